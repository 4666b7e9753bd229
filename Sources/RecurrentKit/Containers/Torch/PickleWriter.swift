/// Writes the few pickle protocol 2 opcodes a state_dict needs: strings, integers, tuples,
/// dicts, globals, REDUCE, BUILD and persistent ids.
///
/// Nothing is memoized: every global is written out again where it is used, which costs a
/// few bytes per tensor and keeps the writer free of memo bookkeeping. `torch.load` with
/// `weights_only=True` reads the result; so does `PickleMachine`.
struct PickleWriter {
    private(set) var bytes: [UInt8] = [0x80, 2] // PROTO 2

    mutating func mark() { bytes.append(0x28) }
    mutating func stop() { bytes.append(0x2E) }
    mutating func reduce() { bytes.append(0x52) }
    mutating func build() { bytes.append(0x62) }
    mutating func persistentID() { bytes.append(0x51) }
    mutating func emptyDict() { bytes.append(0x7D) }
    mutating func setItem() { bytes.append(0x73) }
    mutating func setItems() { bytes.append(0x75) }
    mutating func tupleFromMark() { bytes.append(0x74) }
    mutating func bool(_ value: Bool) { bytes.append(value ? 0x88 : 0x89) }

    /// GLOBAL `module name`, each newline-terminated.
    mutating func global(_ module: String, _ name: String) {
        bytes.append(0x63)
        bytes += Array(module.utf8) + [0x0A] + Array(name.utf8) + [0x0A]
    }

    /// BINUNICODE: a 4-byte little-endian length and UTF-8 (strings past 4 GiB are not written).
    mutating func string(_ text: String) {
        let utf8 = Array(text.utf8)
        bytes.append(0x58)
        appendLittleEndian(UInt32(truncatingIfNeeded: utf8.count), count: 4)
        bytes += utf8
    }

    /// The smallest of BININT1, BININT2, BININT and LONG1 that holds `value`.
    mutating func int(_ value: Int) {
        switch value {
        case 0...0xFF:
            bytes += [0x4B, UInt8(value)]
        case 0...0xFFFF:
            bytes.append(0x4D)
            appendLittleEndian(UInt32(value), count: 2)
        case Int(Int32.min)...Int(Int32.max):
            bytes.append(0x4A)
            appendLittleEndian(UInt32(bitPattern: Int32(value)), count: 4)
        default:
            // LONG1: two's complement, little-endian, as few bytes as keep the sign.
            var payload: [UInt8] = []
            var rest = value
            var byte: UInt8
            repeat {
                byte = UInt8(truncatingIfNeeded: rest)
                payload.append(byte)
                rest >>= 8
            } while !(rest == 0 && byte & 0x80 == 0) && !(rest == -1 && byte & 0x80 != 0)
            bytes += [0x8A, UInt8(payload.count)] + payload
        }
    }

    /// A tuple of integers (a size or a stride): EMPTY_TUPLE, TUPLE1…3, or MARK … TUPLE.
    mutating func intTuple(_ values: [Int]) {
        switch values.count {
        case 0:
            bytes.append(0x29)
        case 1...3:
            values.forEach { int($0) }
            bytes.append(0x84 + UInt8(values.count))
        default:
            mark()
            values.forEach { int($0) }
            tupleFromMark()
        }
    }

    /// `collections.OrderedDict()`, as Python pickles it: the class REDUCEd with no arguments.
    mutating func emptyOrderedDict() {
        global("collections", "OrderedDict")
        bytes.append(0x29)
        reduce()
    }

    private mutating func appendLittleEndian(_ value: UInt32, count: Int) {
        for shift in 0..<count { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt32(shift)))) }
    }
}
