// libFuzzer target: bytes as a `.keras` archive, read as `inspect` and `--architecture`
// read one. Built and run by scripts/fuzz.sh.
import Foundation
import FuzzEntryPoints
import FuzzSupport
import RecurrentKit

let path = NSTemporaryDirectory() + "/rnnkit-fuzz-\(getpid()).keras"

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    FuzzEntry.kerasArchive(fuzzInput(start, count), path: path)
    return 0
}

@_cdecl("FuzzKerasArchive_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, test)
}
