// libFuzzer target: bytes as an HDF5 model file (PyTorch or Keras), read in memory the way
// `inspect` reads a file. Built and run by scripts/fuzz.sh.
import RecurrentKit

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    FuzzEntry.hdf5Model(Array(UnsafeRawBufferPointer(start: start, count: count)))
    return 0
}

// SwiftPM links an executable with `main` defined as `FuzzHDF5Model_main`, which would shadow
// libFuzzer's own `main`; this one starts libFuzzer's driver on the function above.
@_extern(c, "LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ test: @convention(c) (UnsafeRawPointer, Int) -> CInt) -> CInt

@_cdecl("FuzzHDF5Model_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var (count, arguments) = (argc, argv)
    return runDriver(&count, &arguments, test)
}
