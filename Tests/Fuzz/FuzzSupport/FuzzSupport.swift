// What every libFuzzer target shares (Tests/Fuzz, built by scripts/fuzz.sh).

@_extern(c, "LLVMFuzzerRunDriver")
func _runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                _ test: @convention(c) (UnsafeRawPointer, Int) -> CInt) -> CInt

/// Starts libFuzzer's driver on `test`. SwiftPM links an executable with `main` defined as
/// `<Module>_main`, which shadows libFuzzer's own `main`; each target defines that symbol
/// and calls this.
public func runLibFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                         _ test: @convention(c) (UnsafeRawPointer, Int) -> CInt) -> CInt {
    var (count, arguments) = (argc, argv)
    return _runDriver(&count, &arguments, test)
}

/// libFuzzer's input as bytes.
public func fuzzInput(_ start: UnsafeRawPointer, _ count: Int) -> [UInt8] {
    Array(UnsafeRawBufferPointer(start: start, count: count))
}
