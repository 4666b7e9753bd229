import Foundation
import TextSafety
import RecurrentEngine

/// `torch.save` files (the zip format of PyTorch ≥ 1.6), read as the state_dict they hold and
/// written from tensors, without ever executing pickle.
///
/// An archive is one folder (`archive/`, or the file's stem) holding `data.pkl` — the pickled
/// object, whose tensors name storages by persistent id — `data/<key>` for each storage,
/// `byteorder` and `version`. The pickle is run by `PickleMachine`, which knows only plain
/// data and torch's tensor records; the storages a state_dict uses are read into memory once
/// each and shared by the tensors that view them.
enum TorchSaveFile {
    /// Reads a torch.save file (zip format, PyTorch ≥ 1.6) as a flat container of the state_dict it holds.
    /// `key`: for a checkpoint dict, which entry holds the state_dict (a top-level key, or
    /// `a/b` for a nested one); nil finds it when exactly one dict holds only tensors.
    static func read(_ path: String, key: String? = nil) throws -> FlatContainer {
        let data = try InputFiles.read(path, limit: Limits.torchFileBytes, what: "Limits.torchFileBytes")
        return try read(data: data, name: path, key: key)
    }

    /// The same from bytes in memory (fuzzing, tests); `name` is the file as errors name it.
    static func read(bytes: [UInt8], name: String, key: String? = nil) throws -> FlatContainer {
        guard bytes.count <= Limits.torchFileBytes else {
            throw ModelError(.unreadableFile, file: name, message: "holds \(bytes.count) bytes, \(Limits.excess(bytes.count, over: Limits.torchFileBytes)) (Limits.torchFileBytes)")
        }
        return try read(data: Data(bytes), name: name, key: key)
    }

    /// Writes a zip-format file that `torch.load(path, weights_only=True)` accepts, holding an
    /// OrderedDict of float32 tensors in the given order; `modelConfig` (JSON text) is kept in
    /// the OrderedDict's `_metadata` as `_metadata["rnnkit"] = {"model_config": modelConfig}`.
    ///
    /// `path` must not exist (a writer's temporary): it is created exclusively. The archive's
    /// folder is `archive`, as torch names it when saving to a buffer; each tensor has its own
    /// storage `data/<n>`, little-endian, aligned to 64 bytes. The same input gives the same
    /// bytes. torch's `.format_version` and `.storage_alignment` records are left out: they
    /// promise data descriptors after each record, which this writer does not write.
    static func write(_ tensors: [(key: String, tensor: Tensor)], modelConfig: String?, to path: String) throws {
        // BINUNICODE lengths are 4 bytes: bound what goes into them before writing anything.
        if let modelConfig, let problem = Limits.checkJSONSize(modelConfig) {
            throw ModelError(.invalidInput, file: path, path: "_metadata['rnnkit']['model_config']", message: problem)
        }
        if let long = tensors.first(where: { $0.key.utf8.count > Limits.nameCharacters }) {
            throw ModelError(.invalidInput, file: path, path: "state_dict key '\(escapedForDisplay(long.key))'", message: "is longer than \(Limits.nameCharacters) bytes (Limits.nameCharacters)")
        }
        var pickle = PickleWriter()
        pickle.emptyOrderedDict()
        pickle.mark()
        for (index, entry) in tensors.enumerated() {
            let shape = entry.tensor.shape
            pickle.string(entry.key)
            pickle.global("torch._utils", "_rebuild_tensor_v2")
            pickle.mark()
            // The persistent id: ('storage', torch.FloatStorage, key, location, numel).
            pickle.mark()
            pickle.string("storage")
            pickle.global("torch", "FloatStorage")
            pickle.string(String(index))
            pickle.string("cpu")
            pickle.int(entry.tensor.count)
            pickle.tupleFromMark()
            pickle.persistentID()
            pickle.int(0)
            pickle.intTuple(shape)
            pickle.intTuple(RawTensor.contiguousStrides(shape))
            pickle.bool(false)
            pickle.emptyOrderedDict()
            pickle.tupleFromMark()
            pickle.reduce()
        }
        pickle.setItems()
        if let modelConfig {
            // BUILD with {'_metadata': OrderedDict(rnnkit={'model_config': text})}.
            pickle.emptyDict()
            pickle.string("_metadata")
            pickle.emptyOrderedDict()
            pickle.string("rnnkit")
            pickle.emptyDict()
            pickle.string("model_config")
            pickle.string(modelConfig)
            pickle.setItem()
            pickle.setItem()
            pickle.setItem()
            pickle.build()
        }
        pickle.stop()

        let zip = try ZipWriter(creating: path)
        var serialization = 0xCBF2_9CE4_8422_2325 as UInt64
        func add(_ name: String, _ bytes: [UInt8]) throws {
            try zip.add("archive/" + name, bytes)
            // FNV-1a over names and contents: a serialization id that depends only on them.
            for byte in Array(name.utf8) + bytes { serialization = (serialization ^ UInt64(byte)) &* 0x100_0000_01B3 }
        }
        try add("data.pkl", pickle.bytes)
        try add("byteorder", Array("little".utf8))
        for (index, entry) in tensors.enumerated() {
            try add("data/\(index)", RawTensor.littleEndianBytes(entry.tensor.values))
        }
        try add("version", Array("3\n".utf8))
        // torch writes 40 decimal digits here; it identifies the save, nothing reads it back.
        let id = String(serialization)
        try zip.add("archive/.data/serialization_id", Array((String(repeating: "0", count: 40 - id.count) + id).utf8))
        try zip.finish()
    }

    // MARK: Reading

    /// The 10-byte LONG1 magic number that opens a legacy (pre-1.6) torch.save pickle stream.
    private static let legacyMagic: [UInt8] = [0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    private static func read(data: Data, name: String, key: String?) throws -> FlatContainer {
        let head = [UInt8](data.prefix(32))
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) || head.starts(with: [0x50, 0x4B, 0x05, 0x06]) {
            return try readArchive(data, name: name, key: key)
        }
        if head.first == 0x80 {
            try refusePickleStream([UInt8](data), head: head, name: name)
        }
        throw ModelError(.unreadableFile, file: name, message: "is not a torch.save file (neither a zip archive nor a pickle)")
    }

    /// A pickle stream outside a zip: torch's legacy format, or a bare pickle. Both are
    /// refused; a bare one is run first by the restricted machine, so that a hostile global
    /// is named as such.
    private static func refusePickleStream(_ bytes: [UInt8], head: [UInt8], name: String) throws -> Never {
        if (0..<max(0, head.count - legacyMagic.count)).contains(where: { head[$0...].starts(with: legacyMagic) }) {
            throw ModelError(.unsupported, file: name, message: "is a torch.save file in the legacy format (before torch 1.6, or _use_new_zipfile_serialization=False); re-save it with torch ≥ 1.6: torch.save(torch.load(OLD, weights_only=True), NEW)")
        }
        guard bytes.count <= Limits.torchPickleBytes else {
            throw ModelError(.unreadableFile, file: name, message: "is a pickle of \(bytes.count) bytes, not a torch.save file (a zip archive)")
        }
        _ = try PickleMachine.run(bytes, file: name, location: "pickle")
        throw ModelError(.unsupported, file: name, message: "is a bare pickle, not a torch.save file (a zip archive holding data.pkl); save the weights with torch.save(model.state_dict(), \"m.pt\")")
    }

    private static func readArchive(_ data: Data, name: String, key: String?) throws -> FlatContainer {
        let archive = try TorchArchive(data: data, name: name)
        let prefix = archive.prefix
        let pickleName = "\(prefix)/data.pkl"
        guard let version = try archive.member("\(prefix)/version", limit: 16, bound: "the size of a version record") else {
            throw ModelError(.unreadableFile, file: name, path: "\(prefix)/version", message: "missing: not a torch.save archive (torch.load refuses it too)")
        }
        let versionText = String(decoding: version, as: UTF8.self).trimmingCharacters(in: .newlines)
        guard !versionText.isEmpty, versionText.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw ModelError(.unreadableFile, file: name, path: "\(prefix)/version", message: "holds '\(escapedForDisplay(versionText))', not a version number")
        }
        var order = TensorDType.ByteOrder.little
        if let bytes = try archive.member("\(prefix)/byteorder", limit: 16, bound: "the size of a byte order record") {
            switch String(decoding: bytes, as: UTF8.self) {
            case "little": order = .little
            case "big": order = .big
            case let other:
                throw ModelError(.unreadableFile, file: name, path: "\(prefix)/byteorder", message: "holds '\(escapedForDisplay(other))', not 'little' or 'big'")
            }
        }
        guard let pickle = try archive.member(pickleName, limit: Limits.torchPickleBytes, bound: "Limits.torchPickleBytes") else {
            throw ModelError(.unreadableFile, file: name, path: pickleName, message: "missing: not a torch.save archive")
        }
        let unpickled = try PickleMachine.run(pickle, file: name, location: pickleName)
        let stateDict = try findStateDict(unpickled, key: key, file: name, location: pickleName)
        let metadata = try rnnkitMetadata(stateDict, in: unpickled, file: name, location: pickleName)

        var storageBytes: [Int: [UInt8]] = [:]
        var totalBytes = 0
        var tensors: [NamedTensor] = []
        for (entryKey, value) in zip(stateDict.keys, stateDict.values) {
            let tensorName = entryKey.text
            let location = "state_dict key '\(escapedForDisplay(tensorName))'"
            guard case let .tensor(index) = value else {
                throw ModelError(file: name, path: location, message: "holds \(value.kindName), not a tensor")
            }
            let view = unpickled.tensors[index]
            let storage = unpickled.storages[view.storage]
            var dtype = storage.type.dtype
            dtype.byteOrder = order
            guard RawTensor.elementSize(dtype) != nil || storage.type.isInteger else {
                throw ModelError(.unsupported, file: name, path: location, message: "holds \(dtype) values; rnnkit reads float16, bfloat16, float32 and float64 weights")
            }
            let bytes: [UInt8]
            if let cached = storageBytes[view.storage] {
                bytes = cached
            } else {
                guard let size = Limits.product([storage.count, storage.type.elementSize], within: Limits.torchStorageBytes),
                      size <= Limits.torchStorageBytes - totalBytes else {
                    throw ModelError(.unreadableFile, file: name, path: location, message: "needs storage '\(escapedForDisplay(storage.key))' of \(storage.count) \(dtype) elements; the storages together pass \(Limits.torchStorageBytes) bytes (Limits.torchStorageBytes)")
                }
                let record = "\(prefix)/data/\(storage.key)"
                guard let read = try archive.member(record, limit: size, bound: "the bytes its \(storage.count) \(dtype) elements need") else {
                    throw ModelError(.unreadableFile, file: name, path: record, message: "missing: the storage of \(location)")
                }
                guard read.count == size else {
                    throw ModelError(.unreadableFile, file: name, path: record, message: "holds \(read.count) bytes where its \(storage.count) \(dtype) elements need \(size)")
                }
                totalBytes += size
                storageBytes[view.storage] = read
                bytes = read
            }
            let raw = RawTensor(bytes: bytes, dtype: dtype, shape: view.shape, strides: view.strides, offset: view.offset)
            if storage.type.isInteger {
                tensors.append(try integerTensor(raw, name: tensorName, location: location, file: name))
                continue
            }
            if let problem = raw.problem() {
                throw ModelError(file: name, path: location, message: "\(problem) (shape \(shapeText(view.shape)))")
            }
            tensors.append(raw.named(tensorName, location: location))
        }
        // The pickled dict's order is the state_dict's: the order the modules were registered.
        return try FlatContainer(file: name, location: pickleName, tensors: tensors, metadata: metadata,
                                 keysInRegistrationOrder: true)
    }

    /// An integer or bool tensor: listed with its dtype and shape, its view checked against
    /// its storage like a float's, and refused when read as floats.
    private static func integerTensor(_ raw: RawTensor, name: String, location: String, file: String) throws -> NamedTensor {
        let size = max(raw.dtype.bits / 8, 1)
        let capacity = raw.bytes.count / size
        if let problem = RawTensor.viewProblem(shape: raw.shape, strides: raw.strides ?? RawTensor.contiguousStrides(raw.shape),
                                     offset: raw.offset, capacity: capacity) {
            throw ModelError(file: file, path: location, message: "\(problem) (shape \(shapeText(raw.shape)), \(raw.dtype))")
        }
        let refusal = ModelError(.unsupported, file: file, path: location,
                                 message: "holds \(raw.dtype) values (an integer buffer), not floating-point weights; they are not read as floats")
        return NamedTensor(name: name, location: location, shape: raw.shape, count: RawTensor.count(raw.shape) ?? 0,
                           dtype: raw.dtype, compressed: false,
                           readFloats: { throw refusal }, readColumns: { _ in throw refusal })
    }

    // MARK: Finding the state_dict

    /// How many dicts deep a state_dict is looked for (`ema/state_dict` is two).
    static let searchDepth = 4

    /// A dict of string keys to tensors, where the file holds it.
    struct Candidate {
        /// `/`-joined keys from the top (`""`: the top itself).
        var path: String
        var object: Int
        var tensors: Int

        var described: String { "\(path.isEmpty ? "(the top level)" : path) (\(tensors) tensors)" }
    }

    /// True for a non-empty dict whose keys are all strings and values all tensors.
    static func isStateDict(_ dict: PickleDict) -> Bool {
        !dict.keys.isEmpty && dict.keys.allSatisfy { if case .string = $0 { true } else { false } }
            && dict.values.allSatisfy { if case .tensor = $0 { true } else { false } }
    }

    /// Every state_dict reachable from the top through string keys, `searchDepth` dicts deep.
    /// Integer-keyed dicts (an optimizer's `state`) are not searched.
    static func candidates(_ unpickled: Unpickled) -> [Candidate] {
        var found: [Candidate] = []
        var visited: Set<Int> = []
        func visit(_ value: PickleValue, path: String, depth: Int) {
            guard case let .object(index) = value, case let .dict(dict) = unpickled.objects[index],
                  visited.insert(index).inserted else { return }
            if isStateDict(dict) {
                found.append(Candidate(path: path, object: index, tensors: dict.keys.count))
                return
            }
            guard depth < searchDepth else { return }
            for (key, child) in zip(dict.keys, dict.values) {
                if case let .string(name) = key { visit(child, path: path.isEmpty ? name : path + "/" + name, depth: depth + 1) }
            }
        }
        visit(unpickled.root, path: "", depth: 0)
        return found
    }

    private static func findStateDict(_ unpickled: Unpickled, key: String?, file: String, location: String) throws -> PickleDict {
        let found = candidates(unpickled)
        let listing = found.isEmpty ? "none" : shownList(found.map(\.described))
        if let key {
            var value = unpickled.root
            for part in key.split(separator: "/", omittingEmptySubsequences: false) {
                guard let dict = unpickled.dict(value), let child = dict[String(part)] else {
                    throw ModelError(.invalidInput, file: file, path: location, message: "has no entry '\(escapedForDisplay(key))'; state_dicts in the file: \(listing)")
                }
                value = child
            }
            guard let dict = unpickled.dict(value), isStateDict(dict) else {
                throw ModelError(.invalidInput, file: file, path: location, message: "entry '\(escapedForDisplay(key))' holds \(describe(value, in: unpickled)), not a state_dict (a dict of string keys to tensors); state_dicts in the file: \(listing)")
            }
            return dict
        }
        switch found.count {
        case 1:
            guard case let .dict(dict) = unpickled.objects[found[0].object] else { break }
            return dict
        case 0:
            throw ModelError(file: file, path: location, message: "holds no state_dict (a non-empty dict of string keys to tensors, looked for \(searchDepth) dicts deep): the top level is \(describe(unpickled.root, in: unpickled))")
        default:
            throw ModelError(.invalidInput, file: file, path: location, message: "holds \(found.count) state_dicts: \(listing); pass \(option: .key, "NAME") to choose one")
        }
        throw ModelError(file: file, path: location, message: "holds no state_dict")
    }

    /// A value for messages: a dict with its first keys, or its kind.
    private static func describe(_ value: PickleValue, in unpickled: Unpickled) -> String {
        guard case let .object(index) = value else { return value.kindName }
        switch unpickled.objects[index] {
        case let .dict(dict):
            return dict.keys.isEmpty ? "an empty dict" : "a dict with keys \(shownList(dict.keys.map(\.text)))"
        case let .list(items): return "a list of \(items.count) items"
        case let .tuple(items): return "a tuple of \(items.count) items"
        }
    }

    /// `model_config` from the state_dict's `_metadata["rnnkit"]`, when present.
    private static func rnnkitMetadata(_ stateDict: PickleDict, in unpickled: Unpickled, file: String,
                                       location: String) throws -> [String: String] {
        guard let metadata = unpickled.dict(stateDict.attributes["_metadata"]), let entry = metadata["rnnkit"] else { return [:] }
        guard let rnnkit = unpickled.dict(entry) else {
            throw ModelError(file: file, path: "\(location): _metadata['rnnkit']", message: "is \(entry.kindName), not a dict")
        }
        guard let config = rnnkit["model_config"] else { return [:] }
        guard case let .string(text) = config else {
            throw ModelError(file: file, path: "\(location): _metadata['rnnkit']['model_config']", message: "is \(config.kindName), not a JSON string")
        }
        return ["model_config": text]
    }
}

/// A torch.save zip archive in memory, its members read on request through the one zip
/// reader (`ZipArchive`: every offset, size and ZIP64 record checked, names checked,
/// duplicates refused, members stored or deflated, sizes and CRC-32 checked). What is
/// torch's own is checked here: as torch requires, every member is inside one folder, named
/// by the first member's path; a TorchScript archive is refused.
private struct TorchArchive {
    let name: String
    let prefix: String
    private let zip: ZipArchive

    init(data: Data, name: String) throws {
        self.name = name
        zip = try ZipArchive(data: data, name: name)
        guard let first = zip.entries.first?.name else {
            throw ModelError(.unreadableFile, file: name, message: "is an empty zip archive, not a torch.save file")
        }
        guard let slash = first.firstIndex(of: "/"), slash != first.startIndex else {
            throw ModelError(.unreadableFile, file: name, path: first, message: "is not inside a folder: the archive is not a torch.save file")
        }
        prefix = String(first[..<slash])
        for path in zip.names.sorted() where !path.hasPrefix(prefix + "/") {
            throw ModelError(.unreadableFile, file: name, path: path, message: "is outside the archive's folder '\(escapedForDisplay(prefix))/'; torch.load refuses such an archive too")
        }
        if zip.entry("\(prefix)/constants.pkl") != nil || zip.names.contains(where: { $0.hasPrefix("\(prefix)/code/") }) {
            throw ModelError(.unsupported, file: name, message: "is a TorchScript archive (torch.jit.save); save the weights with torch.save(model.state_dict(), \"m.pt\") and read that file")
        }
    }

    /// The bytes of member `path` (nil when absent), refused when its directory entry
    /// declares more than `limit` bytes (`bound` says what the limit is), when it inflates
    /// past what it declares, or when its size or CRC-32 differ (`ZipArchive.member`).
    func member(_ path: String, limit: Int, bound: String) throws -> [UInt8]? {
        try zip.member(path, limit: limit, bound: bound)
    }
}
