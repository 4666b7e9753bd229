// libFuzzer target: one selector byte, then a PyTorch-side model_config JSON, built against
// the state_dicts of the committed PyTorch fixtures that carry one
// (FuzzEntry.pytorchModelConfig). Built and run by scripts/fuzz.sh, from the repository
// root (RECURRENTKIT_FUZZ_FIXTURES names another).
import Foundation
import HDF5
import FuzzEntryPoints
import FuzzSupport
import RecurrentKit

nonisolated(unsafe) let stateDicts = FuzzEntry.configuredStateDicts(
    folder: (ProcessInfo.processInfo.environment["RECURRENTKIT_FUZZ_FIXTURES"] ?? "fixtures") + "/pytorch")

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    FuzzEntry.pytorchModelConfig(fuzzInput(start, count), stateDicts: stateDicts)
    return 0
}

@_cdecl("FuzzPyTorchModelConfig_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, test)
}
