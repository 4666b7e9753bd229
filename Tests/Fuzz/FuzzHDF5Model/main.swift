// libFuzzer target: bytes as an HDF5 model file (PyTorch or Keras), read in memory the way
// `inspect` reads a file. Built and run by scripts/fuzz.sh.
import FuzzEntryPoints
import FuzzSupport
import RecurrentKit

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    FuzzEntry.hdf5Model(fuzzInput(start, count))
    return 0
}

@_cdecl("FuzzHDF5Model_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, test)
}
