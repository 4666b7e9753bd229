// libFuzzer target: bytes as a fixture or input file, read as `verify` and `run` read them.
// Built and run by scripts/fuzz.sh.
import Foundation
import FuzzEntryPoints
import FuzzSupport
import RecurrentKit

let path = NSTemporaryDirectory() + "/rnnkit-fuzz-\(getpid()).fixture.h5"

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    FuzzEntry.fixture(fuzzInput(start, count), path: path)
    return 0
}

@_cdecl("FuzzFixture_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, test)
}
