// libFuzzer target: one selector byte, then a Keras config JSON, planned against the
// weights of the committed `.keras` fixtures (FuzzEntry.kerasConfig). Built and run by
// scripts/fuzz.sh, from the repository root (RECURRENTKIT_FUZZ_FIXTURES names another).
import Foundation
import HDF5
import RecurrentKit

nonisolated(unsafe) let weights = FuzzEntry.archiveWeights(
    folder: (ProcessInfo.processInfo.environment["RECURRENTKIT_FUZZ_FIXTURES"] ?? "fixtures") + "/keras")

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    FuzzEntry.kerasConfig(Array(UnsafeRawBufferPointer(start: start, count: count)), weights: weights)
    return 0
}

// SwiftPM links an executable with `main` defined as `FuzzKerasConfig_main`, which would shadow
// libFuzzer's own `main`; this one starts libFuzzer's driver on the function above.
@_extern(c, "LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ test: @convention(c) (UnsafeRawPointer, Int) -> CInt) -> CInt

@_cdecl("FuzzKerasConfig_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var (count, arguments) = (argc, argv)
    return runDriver(&count, &arguments, test)
}
