// libFuzzer target: bytes as a safetensors file, read as `inspect` reads one: header,
// offsets, dtypes, metadata and the PyTorch layout (FuzzEntry.safetensors). Built and run
// by scripts/fuzz.sh.
import FuzzEntryPoints
import FuzzSupport
import RecurrentKit

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    FuzzEntry.safetensors(fuzzInput(start, count))
    return 0
}

@_cdecl("FuzzSafetensors_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, test)
}
