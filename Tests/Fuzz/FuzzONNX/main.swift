// libFuzzer target: bytes as an ONNX model, read as `inspect` reads one and prepared as `run`
// prepares it: protobuf, tensors, the graph and the engine (FuzzEntry.onnx). Built and run by
// scripts/fuzz.sh, seeded from every .onnx file under fixtures/.
import FuzzEntryPoints
import FuzzSupport
import RecurrentKit

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    FuzzEntry.onnx(fuzzInput(start, count))
    return 0
}

@_cdecl("FuzzONNX_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, test)
}
