// libFuzzer target: bytes as a torch.save file (`.pt`/`.pth`), read as `inspect` reads one:
// the restricted pickle reader and the PyTorch layout (FuzzEntry.torchFile). Built and run
// by scripts/fuzz.sh.
import FuzzEntryPoints
import FuzzSupport
import RecurrentKit

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    FuzzEntry.torchFile(fuzzInput(start, count))
    return 0
}

@_cdecl("FuzzTorchFile_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, test)
}
