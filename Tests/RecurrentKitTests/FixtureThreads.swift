import RecurrentKit
import XCTest

/// Runs `model` on `fixture`'s inputs on one, two and three threads and asserts the same bits:
/// directions, batch rows or hidden units split over threads, or stacked one-direction layers
/// run as a pipeline (the fixtures' batches are small), against the real frameworks' inputs.
func assertThreadCountsAgree(_ name: String, model: LoadedModel, fixture: Fixture,
                             file: StaticString = #filePath, line: UInt = #line) throws {
    let states = try model.initialStates(h0: fixture.h0, c0: fixture.c0, batch: fixture.input.batch)
    let one = try model.run(fixture.input, lengths: fixture.lengths, initialStates: states)
    for threads in [2, 3] {
        let many = try model.run(fixture.input, lengths: fixture.lengths, initialStates: states, threads: threads)
        XCTAssertEqual(many.output, one.output, "\(name): output on \(threads) threads", file: file, line: line)
        XCTAssertEqual(many.hN, one.hN, "\(name): h_n on \(threads) threads", file: file, line: line)
        XCTAssertEqual(many.cN, one.cN, "\(name): c_n on \(threads) threads", file: file, line: line)
    }
}
