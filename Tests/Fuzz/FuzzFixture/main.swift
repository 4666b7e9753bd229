// libFuzzer target: bytes as a fixture or input file, read as `verify` and `run` read them.
// Built and run by scripts/fuzz.sh.
import Foundation
import RecurrentKit

let path = NSTemporaryDirectory() + "/rnnkit-fuzz-\(getpid()).fixture.h5"

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    FuzzEntry.fixture(Array(UnsafeRawBufferPointer(start: start, count: count)), path: path)
    return 0
}

// SwiftPM links an executable with `main` defined as `FuzzFixture_main`, which would shadow
// libFuzzer's own `main`; this one starts libFuzzer's driver on the function above.
@_extern(c, "LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ test: @convention(c) (UnsafeRawPointer, Int) -> CInt) -> CInt

@_cdecl("FuzzFixture_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var (count, arguments) = (argc, argv)
    return runDriver(&count, &arguments, test)
}
