import TextSafety

/// A value the restricted unpickler produced.
///
/// Tuples, lists and dicts live in the unpickler's arena (`Unpickled.objects`) and a value
/// refers to one by index, so no Swift value ever nests inside another: a pickle that nests
/// tuples a million deep or appends a list to itself costs a flat array, never a recursion.
enum PickleValue: Equatable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    /// A tuple, list or dict: an index into `Unpickled.objects`.
    case object(Int)
    /// A global the file named and rnnkit knows, kept as a name.
    case global(PickleGlobal)
    /// A storage named by a persistent id: an index into `Unpickled.storages`.
    case storage(Int)
    /// A tensor view: an index into `Unpickled.tensors`.
    case tensor(Int)
    /// An allowed object rnnkit has no use for (`torch.device('cpu')`), by what made it.
    case opaque(String)

    /// What the value is, for messages.
    var kindName: String {
        switch self {
        case .none: return "None"
        case .bool: return "a bool"
        case .int: return "an integer"
        case .float: return "a float"
        case .string: return "a string"
        case .bytes: return "bytes"
        case .object: return "a container"
        case let .global(global): return "the global \(global.name)"
        case .storage: return "a storage"
        case .tensor: return "a tensor"
        case let .opaque(name): return "a \(name)"
        }
    }
}

/// A dict key: pickled state_dicts use strings, optimizer states integers; nothing else is
/// accepted as a key.
enum PickleKey: Hashable {
    case string(String)
    case int(Int)

    var text: String {
        switch self {
        case let .string(text): return text
        case let .int(value): return String(value)
        }
    }
}

/// A dict (or `OrderedDict`) in insertion order, as Python keeps it.
struct PickleDict {
    var keys: [PickleKey] = []
    var values: [PickleValue] = []
    private var index: [PickleKey: Int] = [:]
    /// Made by `collections.OrderedDict` (a state_dict) rather than `{}`.
    var ordered: Bool
    /// What BUILD set on the object (a state_dict's `_metadata`).
    var attributes: [String: PickleValue] = [:]

    init(ordered: Bool) {
        self.ordered = ordered
    }

    /// Sets `key` as Python does: a key already present keeps its place and takes the value.
    mutating func set(_ key: PickleKey, _ value: PickleValue) {
        if let at = index[key] {
            values[at] = value
        } else {
            index[key] = keys.count
            keys.append(key)
            values.append(value)
        }
    }

    subscript(key: String) -> PickleValue? {
        index[.string(key)].map { values[$0] }
    }
}

/// A tuple, list or dict of the arena.
enum PickleObject {
    case tuple([PickleValue])
    case list([PickleValue])
    case dict(PickleDict)
}

/// The element types of torch's typed storages, by class name (`torch.FloatStorage`).
enum TorchStorageType: String, CaseIterable {
    case FloatStorage, HalfStorage, BFloat16Storage, DoubleStorage
    case LongStorage, IntStorage, ShortStorage, CharStorage, ByteStorage, BoolStorage
    // Storage classes torch knows whose elements rnnkit cannot use: named in refusals.
    case ComplexFloatStorage, ComplexDoubleStorage
    case QInt8Storage, QInt32Storage, QUInt8Storage, QUInt4x2Storage, QUInt2x4Storage

    /// The element type; integers and bool are listed but never read as weights.
    var dtype: TensorDType {
        switch self {
        case .FloatStorage: return .float32
        case .HalfStorage: return .float16
        case .BFloat16Storage: return .bfloat16
        case .DoubleStorage: return .float64
        case .LongStorage: return TensorDType(kind: .signedInteger, bits: 64, byteOrder: .little)
        case .IntStorage: return TensorDType(kind: .signedInteger, bits: 32, byteOrder: .little)
        case .ShortStorage: return TensorDType(kind: .signedInteger, bits: 16, byteOrder: .little)
        case .CharStorage: return TensorDType(kind: .signedInteger, bits: 8, byteOrder: .little)
        case .ByteStorage: return TensorDType(kind: .unsignedInteger, bits: 8, byteOrder: .little)
        case .BoolStorage: return TensorDType(kind: .other("bool"), bits: 8, byteOrder: .little)
        case .ComplexFloatStorage: return TensorDType(kind: .other("complex64"), bits: 64, byteOrder: .little)
        case .ComplexDoubleStorage: return TensorDType(kind: .other("complex128"), bits: 128, byteOrder: .little)
        case .QInt8Storage: return TensorDType(kind: .other("qint8"), bits: 8, byteOrder: .little)
        case .QInt32Storage: return TensorDType(kind: .other("qint32"), bits: 32, byteOrder: .little)
        case .QUInt8Storage: return TensorDType(kind: .other("quint8"), bits: 8, byteOrder: .little)
        case .QUInt4x2Storage: return TensorDType(kind: .other("quint4x2"), bits: 8, byteOrder: .little)
        case .QUInt2x4Storage: return TensorDType(kind: .other("quint2x4"), bits: 8, byteOrder: .little)
        }
    }

    /// Bytes per element as torch stores them.
    var elementSize: Int { dtype.bits / 8 }

    /// True for the integer and bool storages (listed, readable only as what they are).
    var isInteger: Bool {
        switch dtype.kind {
        case .signedInteger, .unsignedInteger: return true
        case let .other(name): return name == "bool"
        default: return false
        }
    }
}

/// The globals a weights file may name. Each is a name rnnkit recognises and answers with
/// its own Swift code; nothing a file names is ever imported, looked up or called.
enum PickleGlobal: Equatable {
    case orderedDict
    case rebuildTensorV2
    case rebuildParameter
    case rebuildParameterWithState
    case storageType(TorchStorageType)
    case device
    case size

    var name: String {
        switch self {
        case .orderedDict: return "collections.OrderedDict"
        case .rebuildTensorV2: return "torch._utils._rebuild_tensor_v2"
        case .rebuildParameter: return "torch._utils._rebuild_parameter"
        case .rebuildParameterWithState: return "torch._utils._rebuild_parameter_with_state"
        case let .storageType(type): return "torch.\(type.rawValue)"
        case .device: return "torch.device"
        case .size: return "torch.Size"
        }
    }

    /// Modules whose functions run code or touch the system: a pickle naming one is an
    /// attack or a mistake, and the message says rnnkit never calls it.
    static let dangerousModules: Set<String> = [
        "os", "posix", "nt", "sys", "subprocess", "builtins", "__builtin__", "shutil", "socket", "importlib",
        "runpy", "pty", "ctypes", "pickle", "_pickle", "marshal", "types", "code", "codeop", "webbrowser", "io",
        "_io", "operator", "functools", "platform", "signal", "multiprocessing", "asyncio", "pathlib", "tempfile",
        "urllib", "http", "requests", "threading", "_thread", "gc", "inspect", "numpy", "torch.hub", "torch._C",
        "torch.ops", "torch.jit", "torch.serialization", "_codecs", "codecs", "zipimport", "pdb", "timeit",
    ]

    /// The global `module.name`, or why it is refused (one line, names shown escaped).
    static func resolve(module: String, name: String) -> Result<PickleGlobal, PickleRefusal> {
        switch (module, name) {
        case ("collections", "OrderedDict"): return .success(.orderedDict)
        case ("torch._utils", "_rebuild_tensor_v2"): return .success(.rebuildTensorV2)
        case ("torch._utils", "_rebuild_parameter"): return .success(.rebuildParameter)
        case ("torch._utils", "_rebuild_parameter_with_state"): return .success(.rebuildParameterWithState)
        case ("torch", "device"): return .success(.device)
        case ("torch", "Size"): return .success(.size)
        case let ("torch", storage):
            if let type = TorchStorageType(rawValue: storage) { return .success(.storageType(type)) }
        default: break
        }
        // Python 2's name for builtins, as torch's own unpickler maps it.
        let shownModule = module == "__builtin__" ? "builtins" : module
        let full = "\(shownModule).\(name)"
        let root = String(module.split(separator: ".", maxSplits: 1).first ?? "")
        let dangerous = dangerousModules.contains(module) || dangerousModules.contains(root)
            || dangerousModules.contains(where: { module.hasPrefix($0 + ".") })
        if !dangerous, looksLikeModel(module: module, name: name) {
            return .failure(.wholeModule(full))
        }
        return .failure(.call(full))
    }

    /// A class of a user's model or of torch.nn: what `torch.save(model)` pickles.
    private static func looksLikeModel(module: String, name: String) -> Bool {
        module == "__main__" || module.hasPrefix("torch.nn.") || name.first?.isUppercase == true
    }
}

/// Why a global is refused.
enum PickleRefusal: Error, Equatable {
    /// A function or class the file asks pickle to import and call.
    case call(String)
    /// A model's class: the file is a whole pickled module.
    case wholeModule(String)

    var message: String {
        switch self {
        case let .call(name):
            return "names the global '\(escapedForDisplay(name))': the file asks pickle to import and call it, and rnnkit never imports or calls anything a file names; refused"
        case let .wholeModule(name):
            return "names the class '\(escapedForDisplay(name))': the file is a whole pickled module (torch.save(model)), which only Python with that class can load; save the weights with torch.save(model.state_dict(), \"m.pt\") and read that file"
        }
    }
}

/// A storage a persistent id names: `('storage', torch.FloatStorage, '0', 'cpu', 24)`.
struct PickleStorage {
    /// The record's name in the archive (`data/<key>`).
    var key: String
    var type: TorchStorageType
    /// Where torch kept it (`cpu`, `cuda:0`); the bytes are read the same either way.
    var location: String
    /// Elements, as the persistent id declares them.
    var count: Int
}

/// A tensor `_rebuild_tensor_v2` describes: a view of a storage.
struct PickleTensor {
    var storage: Int
    /// In elements from the storage's start.
    var offset: Int
    var shape: [Int]
    /// In elements per axis.
    var strides: [Int]
}

/// What a pickle held: its top value and the arena its values refer into.
struct Unpickled {
    var root: PickleValue
    var objects: [PickleObject]
    var storages: [PickleStorage]
    var tensors: [PickleTensor]

    /// The dict `value` refers to, or nil.
    func dict(_ value: PickleValue?) -> PickleDict? {
        guard case let .object(index)? = value, case let .dict(dict) = objects[index] else { return nil }
        return dict
    }
}

/// A pickle virtual machine that understands only plain data and torch's tensor records.
///
/// It never executes pickle: the opcodes it knows build Swift values, GLOBAL and STACK_GLOBAL
/// only compare the module and name against the handful a weights file uses
/// (`PickleGlobal.resolve`), and REDUCE, NEWOBJ and BUILD act only on those, each answered
/// by Swift code written here. There is no code path from a file's bytes to a lookup or
/// call by name, so a refused global — `os.system`, `builtins.eval`, a model's class — is
/// refused before anything happens, with nothing to undo.
///
/// Every size a pickle declares is checked against the bytes left before anything is
/// allocated; the stack, memo and container items together are bounded by
/// `Limits.pickleValues`, executed opcodes by `Limits.pickleOperations`, container nesting by
/// `Limits.pickleNesting`; integers wider than 64 bits are refused.
struct PickleMachine {
    let file: String
    /// Where errors place the pickle (`archive/data.pkl`).
    let location: String
    private let bytes: [UInt8]
    private var position = 0
    private var stack: [PickleValue] = []
    /// Stack heights at each MARK.
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    private var objects: [PickleObject] = []
    /// Nesting depth of each arena object (1: holds no container).
    private var depths: [Int] = []
    private var storages: [PickleStorage] = []
    private var storageByKey: [String: Int] = [:]
    private var tensors: [PickleTensor] = []
    /// Items held by every container together.
    private var items = 0
    /// Where the opcode being run starts.
    private var opcodeStart = 0

    /// Unpickles `bytes`, a whole pickle ending at STOP.
    static func run(_ bytes: [UInt8], file: String, location: String) throws -> Unpickled {
        var machine = PickleMachine(file: file, location: location, bytes: bytes)
        let root = try machine.execute()
        return Unpickled(root: root, objects: machine.objects, storages: machine.storages, tensors: machine.tensors)
    }

    private init(file: String, location: String, bytes: [UInt8]) {
        self.file = file
        self.location = location
        self.bytes = bytes
    }

    // MARK: Errors

    private func damaged(_ message: String) -> ModelError {
        ModelError(.unreadableFile, file: file, path: location, message: "\(message) (at byte \(opcodeStart))")
    }

    private func refused(_ message: String) -> ModelError {
        ModelError(.unsupported, file: file, path: location, message: "\(message) (at byte \(opcodeStart))")
    }

    // MARK: Reading bytes

    private var remaining: Int { bytes.count - position }

    private mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, count <= remaining else {
            throw damaged("is truncated: an opcode needs \(count) bytes where \(remaining) remain")
        }
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    private mutating func byte() throws -> UInt8 {
        try take(1).first ?? 0
    }

    /// An unsigned little-endian integer of `count` bytes (at most 8).
    private mutating func unsigned(_ count: Int) throws -> UInt64 {
        var value: UInt64 = 0
        for (shift, byte) in try take(count).enumerated() {
            value |= UInt64(byte) << (8 * UInt64(shift))
        }
        return value
    }

    /// A length of `count` bytes, checked against the bytes left before anything is allocated.
    private mutating func length(_ count: Int, signed: Bool = false) throws -> Int {
        let raw = try unsigned(count)
        if signed, count == 4, raw & 0x8000_0000 != 0 { throw damaged("declares a negative length") }
        guard raw <= UInt64(remaining) else {
            throw damaged("declares \(raw) bytes of data where \(remaining) remain")
        }
        return Int(raw)
    }

    private mutating func text(_ count: Int) throws -> String {
        let slice = try take(count)
        guard let text = String(validating: slice, as: UTF8.self) else { throw damaged("holds a string that is not UTF-8") }
        return text
    }

    /// A newline-terminated line (GLOBAL's module and name), at most `Limits.nameCharacters`.
    private mutating func line() throws -> String {
        var end = position
        while end < bytes.count, bytes[end] != 0x0A {
            end += 1
            guard end - position <= Limits.nameCharacters else { throw damaged("holds a GLOBAL name longer than \(Limits.nameCharacters) bytes") }
        }
        guard end < bytes.count else { throw damaged("is truncated inside a GLOBAL opcode") }
        let text = try self.text(end - position)
        position += 1
        return text
    }

    // MARK: The stack

    private mutating func push(_ value: PickleValue) throws {
        guard stack.count + memo.count + items < Limits.pickleValues else {
            throw refused("holds more than \(Limits.pickleValues) values (Limits.pickleValues); refused")
        }
        stack.append(value)
    }

    private mutating func pop() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0), let value = stack.popLast() else {
            throw damaged("pops an empty stack (a stack underflow)")
        }
        return value
    }

    private func top() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0), let value = stack.last else {
            throw damaged("reads the top of an empty stack")
        }
        return value
    }

    /// The values above the last MARK, removing them and the mark.
    private mutating func popMark() throws -> [PickleValue] {
        guard let mark = marks.popLast() else { throw damaged("has no MARK for an opcode that needs one") }
        let values = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return values
    }

    // MARK: The arena

    private func depth(of value: PickleValue) -> Int {
        if case let .object(index) = value { return depths[index] }
        return 0
    }

    /// Adds a container holding `values`, refusing past the bounds on items and nesting.
    private mutating func newObject(_ object: PickleObject, holding values: [PickleValue]) throws -> PickleValue {
        try count(values.count)
        let depth = 1 + (values.map { self.depth(of: $0) }.max() ?? 0)
        guard depth <= Limits.pickleNesting else {
            throw refused("nests containers more than \(Limits.pickleNesting) deep (Limits.pickleNesting); refused")
        }
        objects.append(object)
        depths.append(depth)
        return .object(objects.count - 1)
    }

    private mutating func count(_ added: Int) throws {
        // Every container item (and the container itself) counts against the one bound.
        let (total, overflow) = items.addingReportingOverflow(added + 1)
        guard !overflow, total + stack.count + memo.count <= Limits.pickleValues else {
            throw refused("holds more than \(Limits.pickleValues) values (Limits.pickleValues); refused")
        }
        items = total
    }

    /// Raises the nesting depth of object `index` for a value put into it.
    private mutating func nest(_ index: Int, adding values: [PickleValue]) throws {
        let deepest = 1 + (values.map { self.depth(of: $0) }.max() ?? 0)
        guard deepest <= Limits.pickleNesting else {
            throw refused("nests containers more than \(Limits.pickleNesting) deep (Limits.pickleNesting); refused")
        }
        depths[index] = max(depths[index], deepest)
    }

    private func key(_ value: PickleValue) throws -> PickleKey {
        switch value {
        case let .string(text): return .string(text)
        case let .int(number): return .int(number)
        default: throw refused("uses \(value.kindName) as a dict key; rnnkit reads dicts keyed by strings and integers")
        }
    }

    private mutating func setItems(_ pairs: [PickleValue], into target: PickleValue) throws {
        guard pairs.count % 2 == 0 else { throw damaged("has an odd number of values for a dict's keys and values") }
        guard case let .object(index) = target, case var .dict(dict) = objects[index] else {
            throw damaged("sets items on \(target.kindName), not a dict")
        }
        try count(pairs.count / 2 - 1)
        try nest(index, adding: pairs)
        // The arena entry is replaced while `dict` is held, so the dict is not copied per item.
        objects[index] = .tuple([])
        for at in stride(from: 0, to: pairs.count, by: 2) {
            dict.set(try key(pairs[at]), pairs[at + 1])
        }
        objects[index] = .dict(dict)
    }

    private mutating func append(_ values: [PickleValue], to target: PickleValue) throws {
        guard case let .object(index) = target, case var .list(list) = objects[index] else {
            throw damaged("appends to \(target.kindName), not a list")
        }
        try count(values.count - 1)
        try nest(index, adding: values)
        objects[index] = .tuple([])
        list += values
        objects[index] = .list(list)
    }

    private func tuple(_ value: PickleValue) -> [PickleValue]? {
        guard case let .object(index) = value, case let .tuple(values) = objects[index] else { return nil }
        return values
    }

    // MARK: Executing

    private mutating func execute() throws -> PickleValue {
        var operations = 0
        while true {
            opcodeStart = position
            guard position < bytes.count else { throw damaged("ends before its STOP opcode (truncated)") }
            let opcode = bytes[position]
            position += 1
            operations += 1
            guard operations <= Limits.pickleOperations else {
                throw refused("runs more than \(Limits.pickleOperations) opcodes (Limits.pickleOperations); refused")
            }
            switch opcode {
            case 0x80: // PROTO
                let version = try byte()
                guard (2...5).contains(version) else {
                    throw refused("is pickle protocol \(version); rnnkit reads protocols 2 to 5")
                }
            case 0x95: // FRAME: a length prefix for what follows, which is read as usual.
                _ = try length(8)
            case 0x2E: // STOP
                let value = try pop()
                return value
            case 0x28: // MARK
                guard marks.count < Limits.pickleValues else { throw refused("holds too many MARKs") }
                marks.append(stack.count)
            case 0x30: // POP: the top value, or the last mark when nothing is above it (as Python).
                if stack.count > (marks.last ?? 0) { _ = try pop() } else { _ = try popMark() }
            case 0x31: // POP_MARK
                _ = try popMark()
            case 0x32: // DUP
                try push(try top())
            case 0x4E: try push(.none) // NONE
            case 0x88: try push(.bool(true)) // NEWTRUE
            case 0x89: try push(.bool(false)) // NEWFALSE
            case 0x4A: // BININT
                try push(.int(Int(Int32(bitPattern: UInt32(truncatingIfNeeded: try unsigned(4))))))
            case 0x4B: try push(.int(Int(try byte()))) // BININT1
            case 0x4D: try push(.int(Int(try unsigned(2)))) // BININT2
            case 0x8A: // LONG1
                try push(.int(try long(Int(try byte()))))
            case 0x8B: // LONG4
                try push(.int(try long(try length(4, signed: true))))
            case 0x47: // BINFLOAT: big-endian IEEE double.
                var bits: UInt64 = 0
                for byte in try take(8) { bits = bits << 8 | UInt64(byte) }
                try push(.float(Double(bitPattern: bits)))
            case 0x58: try push(.string(try text(try length(4)))) // BINUNICODE
            case 0x8C: try push(.string(try text(try length(1)))) // SHORT_BINUNICODE
            case 0x8D: try push(.string(try text(try length(8)))) // BINUNICODE8
            case 0x54: try push(.string(try text(try length(4, signed: true)))) // BINSTRING
            case 0x55: try push(.string(try text(try length(1)))) // SHORT_BINSTRING
            case 0x42: try push(.bytes(Array(try take(try length(4))))) // BINBYTES
            case 0x43: try push(.bytes(Array(try take(try length(1))))) // SHORT_BINBYTES
            case 0x8E: try push(.bytes(Array(try take(try length(8))))) // BINBYTES8
            case 0x29: // EMPTY_TUPLE
                try push(try newObject(.tuple([]), holding: []))
            case 0x74: // TUPLE
                let values = try popMark()
                try push(try newObject(.tuple(values), holding: values))
            case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
                var values: [PickleValue] = []
                for _ in 0..<Int(opcode - 0x84) { values.insert(try pop(), at: 0) }
                try push(try newObject(.tuple(values), holding: values))
            case 0x5D: // EMPTY_LIST
                try push(try newObject(.list([]), holding: []))
            case 0x6C: // LIST
                let values = try popMark()
                try push(try newObject(.list(values), holding: values))
            case 0x61: // APPEND
                let value = try pop()
                try append([value], to: try top())
            case 0x65: // APPENDS
                let values = try popMark()
                try append(values, to: try top())
            case 0x7D: // EMPTY_DICT
                try push(try newObject(.dict(PickleDict(ordered: false)), holding: []))
            case 0x64: // DICT
                let pairs = try popMark()
                let dict = try newObject(.dict(PickleDict(ordered: false)), holding: [])
                try setItems(pairs, into: dict)
                try push(dict)
            case 0x73: // SETITEM
                let value = try pop()
                let key = try pop()
                try setItems([key, value], into: try top())
            case 0x75: // SETITEMS
                let pairs = try popMark()
                try setItems(pairs, into: try top())
            case 0x71: try put(Int(try byte())) // BINPUT
            case 0x72: try put(Int(try unsigned(4))) // LONG_BINPUT
            case 0x94: try put(memo.count) // MEMOIZE
            case 0x68: try get(Int(try byte())) // BINGET
            case 0x6A: try get(Int(try unsigned(4))) // LONG_BINGET
            case 0x63: // GLOBAL
                let module = try line()
                let name = try line()
                try push(.global(try global(module: module, name: name)))
            case 0x93: // STACK_GLOBAL
                let name = try pop()
                let module = try pop()
                guard case let .string(moduleText) = module, case let .string(nameText) = name else {
                    throw damaged("has a STACK_GLOBAL whose module and name are not strings")
                }
                try push(.global(try global(module: moduleText, name: nameText)))
            case 0x52: // REDUCE
                let arguments = try pop()
                let callable = try pop()
                try push(try reduce(callable, arguments))
            case 0x81: // NEWOBJ: only OrderedDict(), as `OrderedDict.__new__` would make it.
                let arguments = try pop()
                let type = try pop()
                guard type == .global(.orderedDict), tuple(arguments)?.isEmpty == true else {
                    throw refused("creates \(type.kindName) with NEWOBJ; rnnkit creates only an empty OrderedDict so")
                }
                try push(try newObject(.dict(PickleDict(ordered: true)), holding: []))
            case 0x62: // BUILD
                let state = try pop()
                try build(try top(), state: state)
            case 0x51: // BINPERSID
                let id = try pop()
                try push(try persistentStorage(id))
            default:
                let name = Self.opcodeNames[opcode].map { "\($0) (0x\(String(opcode, radix: 16)))" }
                    ?? "an unknown opcode 0x\(String(opcode, radix: 16))"
                throw refused("uses the pickle opcode \(name); rnnkit reads only the opcodes of plain data and tensors")
            }
        }
    }

    /// A LONG1/LONG4 integer: two's complement, little-endian, at most 64 bits.
    private mutating func long(_ count: Int) throws -> Int {
        guard count <= 8 else { throw refused("holds an integer of \(count) bytes; rnnkit reads integers of up to 64 bits") }
        guard count > 0 else { return 0 }
        let raw = try unsigned(count)
        // Sign-extend from the top bit of the last byte.
        let shift = UInt64(64 - 8 * count)
        return Int(Int64(bitPattern: raw << shift) >> Int64(shift))
    }

    private mutating func put(_ index: Int) throws {
        let value = try top()
        guard memo[index] != nil || stack.count + memo.count + items < Limits.pickleValues else {
            throw refused("memoizes more than \(Limits.pickleValues) values (Limits.pickleValues); refused")
        }
        memo[index] = value
    }

    private mutating func get(_ index: Int) throws {
        guard let value = memo[index] else { throw damaged("reads memo entry \(index), which was never set") }
        try push(value)
    }

    private func global(module: String, name: String) throws -> PickleGlobal {
        switch PickleGlobal.resolve(module: module, name: name) {
        case let .success(global): return global
        case let .failure(refusal): throw refused(refusal.message)
        }
    }

    /// REDUCE: the allowed callables, answered in Swift.
    private mutating func reduce(_ callable: PickleValue, _ arguments: PickleValue) throws -> PickleValue {
        guard case let .global(global) = callable else {
            throw refused("calls \(callable.kindName) with REDUCE; rnnkit calls nothing a file names")
        }
        guard let values = tuple(arguments) else { throw damaged("passes \(arguments.kindName) to \(global.name), not a tuple") }
        switch global {
        case .orderedDict:
            guard values.isEmpty else { throw refused("calls collections.OrderedDict with arguments; torch.save calls it with none") }
            return try newObject(.dict(PickleDict(ordered: true)), holding: [])
        case .rebuildTensorV2:
            return try rebuildTensor(values)
        case .rebuildParameter, .rebuildParameterWithState:
            // (data, requires_grad, backward_hooks[, state]): the parameter's tensor.
            guard values.count == (global == .rebuildParameter ? 3 : 4), case .tensor = values[0] else {
                throw damaged("calls \(global.name) with \(values.count) arguments not starting with a tensor")
            }
            return values[0]
        case .device:
            return .opaque("torch.device")
        case .size:
            guard values.count == 1, let sizes = tuple(values[0]), sizes.allSatisfy({ if case .int = $0 { true } else { false } }) else {
                throw damaged("calls torch.Size with something other than a tuple of integers")
            }
            return values[0]
        case .storageType:
            throw refused("calls the storage class \(global.name); torch.save names storages only in persistent ids")
        }
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks[, metadata])`.
    private mutating func rebuildTensor(_ values: [PickleValue]) throws -> PickleValue {
        guard values.count == 6 || values.count == 7 else {
            throw damaged("calls torch._utils._rebuild_tensor_v2 with \(values.count) arguments where 6 or 7 are expected")
        }
        guard case let .storage(storage) = values[0] else {
            throw damaged("calls torch._utils._rebuild_tensor_v2 with \(values[0].kindName) where a storage is expected")
        }
        guard case let .int(offset) = values[1], let shape = integers(values[2]), let strides = integers(values[3]) else {
            throw damaged("calls torch._utils._rebuild_tensor_v2 with an offset, size or stride that is not integers")
        }
        guard shape.count == strides.count else {
            throw damaged("describes a tensor with \(shape.count) sizes and \(strides.count) strides")
        }
        guard tensors.count < Limits.pickleValues else { throw refused("holds more than \(Limits.pickleValues) tensors") }
        tensors.append(PickleTensor(storage: storage, offset: offset, shape: shape, strides: strides))
        return .tensor(tensors.count - 1)
    }

    private func integers(_ value: PickleValue) -> [Int]? {
        guard let values = tuple(value) else { return nil }
        var result: [Int] = []
        for value in values {
            guard case let .int(number) = value else { return nil }
            result.append(number)
        }
        return result
    }

    /// BINPERSID: `('storage', torch.FloatStorage, key, location, numel)`. A key named twice is
    /// one storage, shared by the tensors that view it.
    private mutating func persistentStorage(_ id: PickleValue) throws -> PickleValue {
        guard let values = tuple(id), values.count == 5, values[0] == .string("storage"),
              case let .global(.storageType(type)) = values[1], case let .string(key) = values[2],
              case let .string(location) = values[3], case let .int(count) = values[4], count >= 0 else {
            throw damaged("has a persistent id that is not ('storage', torch.<Type>Storage, key, location, numel)")
        }
        if let index = storageByKey[key] {
            guard storages[index].type == type, storages[index].count == count else {
                throw damaged("names storage '\(escapedForDisplay(key))' twice with different types or sizes")
            }
            return .storage(index)
        }
        guard storages.count < Limits.pickleValues else { throw refused("names more than \(Limits.pickleValues) storages") }
        storages.append(PickleStorage(key: key, type: type, location: location, count: count))
        storageByKey[key] = storages.count - 1
        return .storage(storages.count - 1)
    }

    /// BUILD: only a dict's attributes (an OrderedDict's `_metadata`), from a dict of strings
    /// or Python's `(dict, None)` state.
    private mutating func build(_ target: PickleValue, state: PickleValue) throws {
        guard case let .object(index) = target, case var .dict(dict) = objects[index] else {
            throw refused("runs BUILD on \(target.kindName); rnnkit sets attributes only on a state_dict's OrderedDict")
        }
        var state = state
        if let pair = tuple(state), pair.count == 2, pair[1] == .none { state = pair[0] }
        guard case let .object(stateIndex) = state, case let .dict(attributes) = objects[stateIndex] else {
            throw refused("runs BUILD with \(state.kindName) as the state; rnnkit accepts a dict of attributes")
        }
        for (key, value) in zip(attributes.keys, attributes.values) {
            guard case let .string(name) = key else { throw refused("runs BUILD with a non-string attribute name") }
            dict.attributes[name] = value
        }
        try nest(index, adding: attributes.values)
        objects[index] = .dict(dict)
    }

    /// The names of pickle opcodes rnnkit refuses, for messages.
    static let opcodeNames: [UInt8: String] = [
        0x49: "INT", 0x4C: "LONG", 0x53: "STRING", 0x56: "UNICODE", 0x46: "FLOAT", 0x70: "PUT", 0x67: "GET",
        0x6F: "OBJ", 0x69: "INST", 0x50: "PERSID", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x92: "NEWOBJ_EX",
        0x8F: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER",
        0x98: "READONLY_BUFFER",
    ]
}
