import Foundation
import TestSupport
import XCTest

/// The helpers the other tests run children with.
final class TestSupportTests: XCTestCase {
    private let megabyte = 1 << 20

    /// A child that writes 1 MB to standard error, 1 MB to standard output and 1 MB more to
    /// standard error (each more than a pipe holds) completes with every byte read, whichever
    /// stream the parent would read first. `timeout` ends a child that blocks for ever, so a
    /// reader that waits on one stream only fails here instead of hanging the suite.
    func testAChildWritingAMegabyteToEachStreamCompletes() throws {
        let script = """
            head -c \(megabyte) /dev/zero | tr '\\000' e >&2
            head -c \(megabyte) /dev/zero | tr '\\000' o
            head -c \(megabyte) /dev/zero | tr '\\000' e >&2
            """
        let result = try runCommand(URL(fileURLWithPath: "/usr/bin/env"), ["timeout", "60", "sh", "-c", script])
        XCTAssertEqual(result.status, 0, "timeout ends a blocked child with 124")
        XCTAssertEqual(result.stdout, String(repeating: "o", count: megabyte))
        XCTAssertEqual(result.stderr, String(repeating: "e", count: 2 * megabyte))
    }

    /// Standard input is written while both outputs are read: 1 MB in, copied to both.
    func testAMegabyteOfInputReachesAChildThatWritesAsItReads() throws {
        let input = Data(repeating: UInt8(ascii: "i"), count: megabyte)
        let result = try runCommand(URL(fileURLWithPath: "/usr/bin/env"), ["timeout", "60", "tee", "/dev/stderr"], input: input)
        XCTAssertEqual(result.status, 0, "timeout ends a blocked child with 124")
        XCTAssertEqual(Data(result.stdout.utf8), input)
        XCTAssertEqual(Data(result.stderr.utf8), input)
    }
}
