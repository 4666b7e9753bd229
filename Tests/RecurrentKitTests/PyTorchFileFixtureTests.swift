import Foundation
import XCTest
import TestSupport
@testable import RecurrentKit

/// Every fixture of files torch wrote itself (`torch.save` `.pt`/`.pth`, safetensors) verifies
/// at the default tolerance, really exercises what it claims to, and the files rnnkit must
/// refuse are refused in one line (fixtures/pytorch-files/README.md).
final class PyTorchFileFixtureTests: XCTestCase {
    /// The cases fixtures/pytorch-files/generate.py makes, with the tags each must carry. A
    /// fixture that goes missing, or loses a tag, fails here.
    static let expectedCases: [String: Set<String>] = [
        "lstm_bidir_2layer_lengths": ["lstm", "bidirectional", "multilayer", "lengths", "pt"],
        "gru_float16": ["gru", "lengths", "float16", "pt"],
        "rnn_bfloat16": ["rnn", "multilayer", "lengths", "bfloat16", "pt"],
        "gru_float64": ["gru", "bidirectional", "lengths", "float64", "pth"],
        "lstm_non_contiguous": ["lstm", "lengths", "pt", "non-contiguous"],
        "gru_shared_storage": ["gru", "bidirectional", "lengths", "pt", "shared-storage"],
        "lstm_checkpoint": ["lstm", "lengths", "pt", "checkpoint"],
        "clf_embed_lstm_last_hidden": ["lstm", "lengths", "padding-idx", "tokens", "model-config", "pt", "whole-model"],
        "clf_embed_bigru_softmax": ["gru", "bidirectional", "lengths", "padding-idx", "tokens", "model-config", "prefix",
                                    "pth", "whole-model"],
        "clf_lstm2_last_step_mlp": ["lstm", "multilayer", "lengths", "model-config", "pt", "whole-model"],
        "clf_bilstm_max_sigmoid": ["lstm", "bidirectional", "lengths", "model-config", "safetensors", "whole-model"],
        "lstm_proj_lengths": ["lstm", "bidirectional", "proj", "lengths", "safetensors"],
        // fixtures/pytorch-files/generate_checkpoints.py: the recurrent part of bigger models.
        "crnn_checkpoint": ["lstm", "bidirectional", "model-config", "pt", "whole-model", "checkpoint", "module-prefix",
                            "integer-buffers", "unselected-keys"],
        "attention_tagger": ["lstm", "bidirectional", "multilayer", "lengths", "padding-idx", "tokens", "model-config", "pt",
                             "whole-model", "unselected-keys"],
    ]

    /// The state_dict's key in the `checkpoint` case's dict (`--key`).
    static let checkpointKey = "model_state_dict"

    /// The refusal files and words their one-line refusal must contain (lowercased).
    static let refusals: [String: [String]] = [
        "refused_pickled_module.pt": ["torch.nn.modules.rnn.lstm", "state_dict"],
        "refused_torchscript.pt": ["torchscript"],
        "refused_legacy_format.pt": ["legacy"],
        "refused_os_system.pt": ["os.system"],
    ]

    static let folder = fixturesFolder.appendingPathComponent("pytorch-files")

    static func load(_ name: String, fixture: Fixture, tags: [String]) throws -> LoadedModel {
        let modelFile = try XCTUnwrap(fixture.model, "\(name): fixture names no model")
        return try LoadedModel(contentsOf: folder.appendingPathComponent(modelFile).path,
                               architecture: fixture.architecturePath,
                               key: tags.contains("checkpoint") ? checkpointKey : nil)
    }

    func testEveryFixtureVerifiesAndExercisesItsTags() throws {
        let folder = Self.folder
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".fixture.h5") }.map { String($0.dropLast(".fixture.h5".count)) }
        XCTAssertEqual(Set(names), Set(Self.expectedCases.keys), "fixture set changed")
        for name in names.sorted() {
            let fixture = try Fixture(contentsOf: folder.appendingPathComponent("\(name).fixture.h5").path)
            let modelFile = try XCTUnwrap(fixture.model, "\(name): fixture names no model")
            XCTAssertTrue(fixture.generator?.hasPrefix("torch ") ?? false, "\(name): generator \(fixture.generator ?? "nil")")
            XCTAssertTrue(Set(fixture.exercises).isSuperset(of: Self.expectedCases[name] ?? []), "\(name): tags \(fixture.exercises)")
            let model: LoadedModel
            do {
                model = try Self.load(name, fixture: fixture, tags: fixture.exercises)
            } catch {
                XCTFail("\(name): \(error)")
                continue
            }
            let verification = try Verification(model: model, fixture: fixture)
            XCTAssertEqual(verification.atol, 1e-5, name)
            XCTAssertEqual(verification.rtol, 1e-4, name)
            for comparison in verification.comparisons {
                XCTAssertTrue(comparison.passed,
                              "\(name) \(comparison.name): max abs \(comparison.maxAbsoluteError), first mismatch \(comparison.firstMismatch ?? [])")
            }
            XCTAssertTrue(verification.comparisons.contains { $0.name == "output" }, name)
            if model.isBareRecurrentModule {
                XCTAssertTrue(verification.comparisons.contains { $0.name == "h_n" }, "\(name): bare modules check h_n")
            }
            try assertExercises(name, tags: fixture.exercises, model: model, fixture: fixture,
                                modelPath: folder.appendingPathComponent(modelFile).path)
            try assertThreadCountsAgree(name, model: model, fixture: fixture)
        }
    }

    /// Checks each tag against the files themselves: the model as rnnkit reads it, and the
    /// container's own records.
    private func assertExercises(_ name: String, tags: [String], model: LoadedModel, fixture: Fixture,
                                 modelPath: String) throws {
        let recurrent = model.recurrentLayers
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: modelPath)))
        let zip = TorchZipListing(bytes)
        let time: Int
        switch fixture.input {
        case let .features(tensor): time = tensor.shape[1]
        case let .tokens(_, _, t): time = t
        case .texts: time = 0
        }
        let storedType = tags.first { ["float16", "bfloat16", "float64"].contains($0) } ?? "float32"
        XCTAssertFalse(model.storedTypes.isEmpty, "\(name): no stored types")
        XCTAssertTrue(model.storedTypes.allSatisfy { $0.split(separator: " ").first.map(String.init) == storedType },
                      "\(name): stored types \(model.storedTypes), expected \(storedType) only")
        let fileExtension = URL(fileURLWithPath: modelPath).pathExtension
        let unpickled = try zip.flatMap { try $0.unpickled(file: modelPath) }
        let tensors = unpickled?.tensors
        for tag in tags {
            let present: Bool
            switch tag {
            case "rnn": present = recurrent.contains { $0.kind == .rnn }
            case "lstm": present = recurrent.contains { $0.kind == .lstm }
            case "gru": present = recurrent.contains { $0.kind == .gru }
            case "bidirectional": present = recurrent.contains { $0.directions.count == 2 }
            case "multilayer": present = recurrent.count > 1
            case "proj": present = recurrent.contains { $0.projectionSize != nil }
            case "lengths": present = fixture.lengths.map { $0.contains { $0 < time } } ?? false
            case "tokens": if case .tokens = fixture.input { present = true } else { present = false }
            case "model-config", "whole-model": present = !model.isBareRecurrentModule
            case "padding-idx":
                if case let .embedding(embedding)? = model.model.layers.first { present = embedding.paddingIndex != nil } else { present = false }
            case "float16", "bfloat16", "float64": present = model.storedTypes.contains(tag)
            case "prefix":
                let document = try Self.modelConfig(fixture)
                present = !((document?["prefix"] as? String) ?? "").isEmpty
            case "pt", "pth": present = fileExtension == tag && zip != nil && model.layout == .pytorchSave
            case "safetensors":
                present = fileExtension == tag && bytes.count > 8 && bytes[8] == UInt8(ascii: "{") && zip == nil
                    && model.layout == .pytorchSafetensors
            case "non-contiguous":
                present = tensors?.contains { $0.strides != RawTensor.contiguousStrides($0.shape) } ?? false
            case "shared-storage":
                // Views of one storage: fewer storage records than tensors, and fewer storages than tensors.
                present = (tensors.map { Set($0.map(\.storage)).count < $0.count } ?? false)
                    && (zip.map { $0.storageRecords.count < (tensors?.count ?? 0) } ?? false)
            case "checkpoint":
                let keys = unpickled.flatMap { $0.dict($0.root) }.map { Set($0.keys.map(\.text)) } ?? []
                present = keys == ["epoch", Self.checkpointKey, "optimizer_state_dict", "loss"]
            case "module-prefix":
                // Every key of the state_dict as nn.DataParallel saves it.
                let keys = try Self.stateDictKeys(unpickled, checkpoint: tags.contains("checkpoint"))
                present = !keys.isEmpty && keys.allSatisfy { $0.hasPrefix("module.") }
            case "integer-buffers":
                // An int64 tensor (BatchNorm's num_batches_tracked) in the state_dict, beside the weights.
                let dict = try Self.stateDict(unpickled, checkpoint: tags.contains("checkpoint"))
                present = dict?.values.contains { value in
                    guard case let .tensor(index) = value, let unpickled else { return false }
                    return unpickled.storages[unpickled.tensors[index].storage].type.isInteger
                } ?? false
            case "unselected-keys":
                // Keys outside the model_config's modules, left unread and counted in a note.
                present = model.notes.contains { $0.contains("outside the model_config's modules were not read") }
            default: XCTFail("\(name): unknown tag \(tag)"); continue
            }
            XCTAssertTrue(present, "\(name) claims '\(tag)' but the files do not show it")
        }
        // Tags that are absent are absent from the files too: no quiet non-contiguous or
        // shared storage in a case that does not claim it.
        if let tensors, !tags.contains("non-contiguous") {
            XCTAssertTrue(tensors.allSatisfy { $0.strides == RawTensor.contiguousStrides($0.shape) }, "\(name): non-contiguous")
        }
        if let tensors, !tags.contains("shared-storage"), !tags.contains("checkpoint") {
            XCTAssertEqual(Set(tensors.map(\.storage)).count, tensors.count, "\(name): shared storage")
        }
        if tags.contains("whole-model") {
            // The architecture comes from the config JSON beside the file, or from the file.
            if let architecture = fixture.architecture {
                XCTAssertTrue(architecture.hasSuffix(".config.json"), "\(name): architecture \(architecture)")
            }
            if fixture.architecture == nil {
                XCTAssertNoThrow(try LoadedModel(contentsOf: modelPath), "\(name): the model_config inside the file")
            } else {
                XCTAssertThrowsError(try LoadedModel(contentsOf: modelPath),
                                     "\(name): a whole model's state_dict without its architecture")
            }
        }
        if tags.contains("checkpoint") {
            // The one dict of tensors under string keys is found without --key too (the
            // optimizer's state has integer keys).
            XCTAssertTrue(try Verification(model: LoadedModel(contentsOf: modelPath, architecture: fixture.architecturePath),
                                           fixture: fixture).passed,
                          "\(name): the checkpoint without --key")
            for key in ["optimizer_state_dict", "epoch", "no_such_key"] {
                XCTAssertThrowsError(try LoadedModel(contentsOf: modelPath, architecture: nil, key: key),
                                     "\(name): --key \(key) is not a model's state_dict")
            }
        }
    }

    /// The state_dict a `torch.save` file holds, read here from its pickle: the top level, or
    /// a checkpoint's `model_state_dict`.
    static func stateDict(_ unpickled: Unpickled?, checkpoint: Bool) throws -> PickleDict? {
        guard let unpickled, let top = unpickled.dict(unpickled.root) else { return nil }
        guard checkpoint else { return top }
        return top[checkpointKey].flatMap { unpickled.dict($0) }
    }

    static func stateDictKeys(_ unpickled: Unpickled?, checkpoint: Bool) throws -> [String] {
        try stateDict(unpickled, checkpoint: checkpoint)?.keys.map(\.text) ?? []
    }

    /// The fixture's `architecture` document as JSON, or nil when it has none.
    static func modelConfig(_ fixture: Fixture) throws -> [String: Any]? {
        guard let path = fixture.architecturePath else { return nil }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any]
    }

    /// Ignoring lengths must give a visibly wrong answer, or the lengths prove nothing.
    func testLengthsMatter() throws {
        for name in ["lstm_non_contiguous", "gru_shared_storage", "clf_bilstm_max_sigmoid", "rnn_bfloat16"] {
            var fixture = try Fixture(contentsOf: Self.folder.appendingPathComponent("\(name).fixture.h5").path)
            let model = try Self.load(name, fixture: fixture, tags: fixture.exercises)
            XCTAssertTrue(try Verification(model: model, fixture: fixture).passed, name)
            fixture.lengths = nil
            XCTAssertFalse(try Verification(model: model, fixture: fixture).passed, "\(name) passes without its lengths")
        }
    }

    /// Each refusal file is refused with one line naming the file and the reason, and the
    /// os.system pickle never runs.
    func testRefusedFiles() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path).filter { $0.hasPrefix("refused_") }
        XCTAssertEqual(Set(names), Set(Self.refusals.keys), "refusal set changed")
        let marker = "rnnkit-ran-a-pickle"
        let workingFolder = FileManager.default.currentDirectoryPath
        for (name, words) in Self.refusals.sorted(by: { $0.key < $1.key }) {
            let path = Self.folder.appendingPathComponent(name).path
            XCTAssertThrowsError(try LoadedModel(contentsOf: path)) { error in
                let message = "\(error)"
                XCTAssertTrue(error is ModelError, "\(name): \(type(of: error))")
                XCTAssertFalse(message.contains("\n"), "\(name): more than one line: \(message)")
                XCTAssertTrue(message.contains(name), "\(name): the message names no file: \(message)")
                for word in words {
                    XCTAssertTrue(message.lowercased().contains(word), "\(name): '\(word)' missing from: \(message)")
                }
            }
            for folder in [workingFolder, Self.folder.path] {
                XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/" + marker), "\(name) ran its pickle")
            }
        }
    }
}

/// A `torch.save` zip's record names and its `data.pkl`, read here from the zip's central
/// directory (torch stores records uncompressed, with zip64 end records), so the container
/// tags are checked against the file, not against the reader under test.
struct TorchZipListing {
    /// Record names, `<archive>/data.pkl`, `<archive>/data/0`, …
    let names: [String]
    private let bytes: [UInt8]
    private let offsets: [String: (local: Int, size: Int)]

    /// nil when `bytes` is not a zip.
    init?(_ bytes: [UInt8]) {
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
        func u64(_ at: Int) -> Int { u32(at) | u32(at + 4) << 32 }
        let end = bytes.count - 22  // no zip comment
        guard bytes.count >= 22, bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]), u32(end) == 0x0605_4B50 else { return nil }
        var entries = u16(end + 10)
        var directory = u32(end + 16)
        if directory == 0xFFFF_FFFF || entries == 0xFFFF {
            let locator = end - 20
            guard locator >= 0, u32(locator) == 0x0706_4B50 else { return nil }
            let record = u64(locator + 8)
            guard record + 56 <= bytes.count, u32(record) == 0x0606_4B50 else { return nil }
            entries = u64(record + 32)
            directory = u64(record + 48)
        }
        var names: [String] = []
        var offsets: [String: (local: Int, size: Int)] = [:]
        var at = directory
        for _ in 0..<entries {
            guard at + 46 <= bytes.count, u32(at) == 0x0201_4B50 else { return nil }
            let nameLength = u16(at + 28), extraLength = u16(at + 30), commentLength = u16(at + 32)
            guard at + 46 + nameLength + extraLength <= bytes.count else { return nil }
            let name = String(decoding: bytes[(at + 46)..<(at + 46 + nameLength)], as: UTF8.self)
            var size = u32(at + 20), local = u32(at + 42)
            // A zip64 extra field holds the sizes and offset the 32-bit fields mark 0xFFFFFFFF.
            var extra = at + 46 + nameLength
            while extra + 4 <= at + 46 + nameLength + extraLength {
                let id = u16(extra), length = u16(extra + 2)
                if id == 0x0001 {
                    var field = extra + 4
                    if u32(at + 24) == 0xFFFF_FFFF { field += 8 }  // uncompressed size
                    if size == 0xFFFF_FFFF { size = u64(field); field += 8 }
                    if local == 0xFFFF_FFFF { local = u64(field) }
                }
                extra += 4 + length
            }
            names.append(name)
            offsets[name] = (local, size)
            at += 46 + nameLength + extraLength + commentLength
        }
        self.names = names
        self.bytes = bytes
        self.offsets = offsets
    }

    /// The storage records, `<archive>/data/<key>`.
    var storageRecords: [String] {
        names.filter { $0.split(separator: "/").dropFirst().first == "data" && $0.split(separator: "/").count == 3 }
    }

    /// A stored record's bytes.
    func record(_ name: String) -> [UInt8]? {
        guard let entry = offsets[name], entry.local + 30 <= bytes.count else { return nil }
        let (local, size) = entry
        let start = local + 30 + (Int(bytes[local + 26]) | Int(bytes[local + 27]) << 8)
            + (Int(bytes[local + 28]) | Int(bytes[local + 29]) << 8)
        guard start + size <= bytes.count else { return nil }
        return Array(bytes[start..<(start + size)])
    }

    /// What `data.pkl` holds: its root value and the tensor views it describes (shape,
    /// strides, storage), unpickled without running anything.
    func unpickled(file: String) throws -> Unpickled? {
        guard let name = names.first(where: { $0.hasSuffix("/data.pkl") }), let pickle = record(name) else { return nil }
        return try PickleMachine.run(pickle, file: file, location: name)
    }
}
