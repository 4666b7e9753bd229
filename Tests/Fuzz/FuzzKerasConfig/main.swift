// libFuzzer target: one selector byte, then a Keras config JSON, planned against the
// weights of the committed `.keras` fixtures (FuzzEntry.kerasConfig). Built and run by
// scripts/fuzz.sh, from the repository root (RECURRENTKIT_FUZZ_FIXTURES names another).
import Foundation
import HDF5
import FuzzEntryPoints
import FuzzSupport
import RecurrentKit

nonisolated(unsafe) let weights = FuzzEntry.archiveWeights(
    folder: (ProcessInfo.processInfo.environment["RECURRENTKIT_FUZZ_FIXTURES"] ?? "fixtures") + "/keras")

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    FuzzEntry.kerasConfig(fuzzInput(start, count), weights: weights)
    return 0
}

@_cdecl("FuzzKerasConfig_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, test)
}
