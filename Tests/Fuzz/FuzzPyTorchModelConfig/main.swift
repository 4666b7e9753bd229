// libFuzzer target: one selector byte, then a PyTorch-side model_config JSON, built against
// the state_dicts of the committed PyTorch fixtures that carry one
// (FuzzEntry.pytorchModelConfig). Built and run by scripts/fuzz.sh, from the repository
// root (RECURRENTKIT_FUZZ_FIXTURES names another).
import Foundation
import HDF5
import RecurrentKit

nonisolated(unsafe) let stateDicts = FuzzEntry.configuredStateDicts(
    folder: (ProcessInfo.processInfo.environment["RECURRENTKIT_FUZZ_FIXTURES"] ?? "fixtures") + "/pytorch")

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    FuzzEntry.pytorchModelConfig(Array(UnsafeRawBufferPointer(start: start, count: count)), stateDicts: stateDicts)
    return 0
}

// SwiftPM links an executable with `main` defined as `FuzzPyTorchModelConfig_main`, which would shadow
// libFuzzer's own `main`; this one starts libFuzzer's driver on the function above.
@_extern(c, "LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ test: @convention(c) (UnsafeRawPointer, Int) -> CInt) -> CInt

@_cdecl("FuzzPyTorchModelConfig_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var (count, arguments) = (argc, argv)
    return runDriver(&count, &arguments, test)
}
