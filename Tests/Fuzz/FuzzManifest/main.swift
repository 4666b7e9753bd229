// libFuzzer target: one selector byte, then a `verify --manifest` file, JSON or YAML, parsed
// into cases as `verify` does (FuzzEntry.manifest). Built and run by scripts/fuzz.sh.
import FuzzEntryPoints
import FuzzSupport
import RecurrentKit

@_cdecl("LLVMFuzzerTestOneInput")
public func test(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    FuzzEntry.manifest(fuzzInput(start, count))
    return 0
}

@_cdecl("FuzzManifest_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, test)
}
