import Foundation
import HDF5
import XCTest
import TestSupport
@testable import RecurrentKit

/// The recurrent part of a bigger checkpoint (spec/pytorch-layout.md, "Selection"): a
/// `model_config` or a list of module prefixes picks the modules read, every other key is
/// left unread and counted in one note, integer buffers and modules rnnkit does not run never
/// block it, keys under `module.` / `_orig_mod.` are found, the skeleton follows the file, and
/// every error names the config's modules. Numbers come from torch
/// (fixtures/pytorch-files/generate_checkpoints.py).
final class ModuleSelectionTests: XCTestCase {
    static let folder = fixturesFolder.appendingPathComponent("pytorch-files")
    let crnn = folder.appendingPathComponent("crnn_checkpoint.pt").path
    let crnnFixture = folder.appendingPathComponent("crnn_checkpoint.fixture.h5").path
    let crnnConfig = folder.appendingPathComponent("crnn_checkpoint.config.json").path
    let tagger = folder.appendingPathComponent("attention_tagger.pt").path
    let taggerFixture = folder.appendingPathComponent("attention_tagger.fixture.h5").path
    let taggerConfig = folder.appendingPathComponent("attention_tagger.config.json").path

    static let crnnWrapperNote = "every key starts with 'module.' (the prefix nn.DataParallel / DistributedDataParallel adds) and the model_config's prefix does not state it: the modules were read under it"
    static let crnnUnreadNote = "14 keys outside the model_config's modules were not read (module.FeatureExtraction.* 14)"
    static let taggerUnreadNote = "4 keys outside the model_config's modules were not read (attention.* 2, fc.* 2)"

    private func assertVerifies(_ model: LoadedModel, _ fixture: String, _ message: String,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        let verification = try Verification(model: model, fixture: Fixture(contentsOf: fixture))
        XCTAssertTrue(verification.comparisons.contains { $0.name == "output" }, message, file: file, line: line)
        for comparison in verification.comparisons {
            XCTAssertTrue(comparison.passed, "\(message): \(comparison.name) max abs \(comparison.maxAbsoluteError)",
                          file: file, line: line)
        }
    }

    private func assertRefused(_ body: @autoclosure () throws -> Any, mentions fragments: [String],
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(error is ModelError, text, file: file, line: line)
            XCTAssertFalse(text.contains("\n"), text, file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue(text.contains(fragment), "\(text) lacks \(fragment)", file: file, line: line)
            }
        }
    }

    // MARK: A model_config is the selection

    func testAConfigReadsItsModulesAndCountsTheRestInOneNote() throws {
        let model = try LoadedModel(contentsOf: crnn, architecture: crnnConfig)
        XCTAssertEqual(model.notes, [Self.crnnWrapperNote, Self.crnnUnreadNote])
        XCTAssertEqual(model.summaries.map(\.name), ["SequenceModeling.0.rnn", "SequenceModeling.0.linear",
                                                    "SequenceModeling.1.rnn", "SequenceModeling.1.linear", "Prediction"])
        XCTAssertEqual(model.storedTypes, ["float32"], "the int64 buffers are not read")
        try assertVerifies(model, crnnFixture, "crnn with its config")

        let tagged = try LoadedModel(contentsOf: tagger, architecture: taggerConfig)
        XCTAssertEqual(tagged.notes, [Self.taggerUnreadNote])
        try assertVerifies(tagged, taggerFixture, "tagger with its config")
        // A file that holds only its model's keys has nothing to note.
        XCTAssertEqual(try LoadedModel(contentsOf: fixture("pytorch/clf_embed_lstm_last_hidden.h5")).notes, [])
    }

    func testAConfigThatStatesTheWrapperPrefixReadsTheSameWithoutItsNote() throws {
        let folder = try temporaryFolder(self)
        var document = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: crnnConfig))) as? [String: Any])
        document["prefix"] = "module."
        let config = folder.appendingPathComponent("stated.json")
        try JSONSerialization.data(withJSONObject: document).write(to: config)
        let model = try LoadedModel(contentsOf: crnn, architecture: config.path)
        XCTAssertEqual(model.notes, [Self.crnnUnreadNote])
        try assertVerifies(model, crnnFixture, "crnn, prefix stated")
        // Names that state it themselves.
        var named = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: crnnConfig))) as? [String: Any])
        named["modules"] = try XCTUnwrap(named["modules"] as? [[String: Any]]).map { module in
            var module = module
            module["name"] = "module." + (module["name"] as? String ?? "")
            return module
        }
        let namedConfig = folder.appendingPathComponent("named.json")
        try JSONSerialization.data(withJSONObject: named).write(to: namedConfig)
        XCTAssertEqual(try LoadedModel(contentsOf: crnn, architecture: namedConfig.path).notes, [Self.crnnUnreadNote])
    }

    func testAKeyUnderAConfigModuleThatItDoesNotUseIsStillRefused() throws {
        let path = try temporaryFolder(self).appendingPathComponent("extra.h5").path
        let source = try HDF5File.open(fixture("pytorch/clf_embed_lstm_last_hidden.h5")).root
        let config = try XCTUnwrap(source.attribute("model_config")?.stringValue)
        do {
            let root = try HDF5File.create(path).root
            for key in try source.datasetPaths() {
                let dataset = try source.dataset(key)
                try root.write(key, floats: try dataset.readFloats(), shape: dataset.shape)
            }
            try root.write("rnn.weight_hr_l0", floats: [Float](repeating: 0.5, count: 6), shape: [2, 3])
            try root.write("head.weight", floats: [Float](repeating: 0.5, count: 6), shape: [2, 3])
            try root.setAttribute("model_config", .string(config))
        }
        // `head` is outside the config's modules: a note. `rnn.weight_hr_l0` is the config's
        // `rnn`, which says it has no projection: refused.
        assertRefused(try LoadedModel(contentsOf: path), mentions: [path, "rnn.weight_hr_l0", "unexpected key", "[2, 3]"])
    }

    // MARK: Integer buffers and modules rnnkit does not run

    func testIntegerBuffersNeverBlockTheModulesRead() throws {
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("bn.h5").path
        let source = try HDF5File.open(fixture("pytorch/clf_embed_lstm_last_hidden.h5")).root
        let config = try XCTUnwrap(source.attribute("model_config")?.stringValue)
        do {
            let root = try HDF5File.create(path).root
            for key in try source.datasetPaths() {
                let dataset = try source.dataset(key)
                try root.write(key, floats: try dataset.readFloats(), shape: dataset.shape)
            }
            try root.write("bn.weight", floats: [1, 1, 1], shape: [3])
            try root.write("bn.num_batches_tracked", integers: [7], shape: [])
            try root.write("position_ids", integers: [0, 1, 2, 3], shape: [1, 4])
        }
        let config1 = folder.appendingPathComponent("config.json")
        try Data(config.utf8).write(to: config1)
        let model = try LoadedModel(contentsOf: path, architecture: config1.path)
        XCTAssertEqual(model.notes, ["3 keys outside the model_config's modules were not read (bn.* 2, position_ids 1)"])
        try assertVerifies(model, fixture("pytorch/clf_embed_lstm_last_hidden.fixture.h5"), "with integer buffers beside it")
        // One a module needs is refused, named, as the integer buffer it is.
        let broken = folder.appendingPathComponent("int_weight.h5").path
        do {
            let root = try HDF5File.create(broken).root
            try root.write("rnn.weight_ih_l0", integers: [Int64](repeating: 1, count: 8 * 3), shape: [8, 3])
            try root.write("rnn.weight_hh_l0", floats: [Float](repeating: 0.5, count: 8 * 2), shape: [8, 2])
        }
        let bare = #"{"modules": [{"type": "LSTM", "name": "rnn", "input_size": 3, "hidden_size": 2, "bias": false}]}"#
        let bareConfig = folder.appendingPathComponent("bare.json")
        try Data(bare.utf8).write(to: bareConfig)
        assertRefused(try LoadedModel(contentsOf: broken, architecture: bareConfig.path),
                      mentions: ["rnn.weight_ih_l0", "layer rnn", "holds int64 values of shape [8, 3], expected floating-point weights"])
    }

    // MARK: Modules picked by key prefix

    func testModulesPickAChainOrABareModuleByKeyPrefix() throws {
        let chain = try LoadedModel(contentsOf: crnn, modules: ["SequenceModeling", "Prediction"])
        XCTAssertFalse(chain.isBareRecurrentModule)
        XCTAssertEqual(chain.summaries.map(\.name), ["SequenceModeling.0.rnn", "SequenceModeling.0.linear",
                                                    "SequenceModeling.1.rnn", "SequenceModeling.1.linear", "Prediction"])
        XCTAssertEqual(chain.notes, [
            "every key starts with 'module.' (the prefix nn.DataParallel / DistributedDataParallel adds) and the selected prefixes do not state it: the modules were read under it",
            "14 keys outside the selected modules (SequenceModeling, Prediction) were not read (module.FeatureExtraction.* 14)",
        ])
        try assertVerifies(chain, crnnFixture, "crnn by --modules")
        // Stated with the wrapper (and a trailing dot): the same model, one note.
        let stated = try LoadedModel(contentsOf: crnn, modules: ["module.SequenceModeling.", "module.Prediction"])
        XCTAssertEqual(stated.notes.count, 1)
        XCTAssertEqual(ModelFingerprint(stated.model), ModelFingerprint(chain.model))

        let encoder = try LoadedModel(contentsOf: tagger, modules: ["embedding", "lstm"])
        XCTAssertEqual(encoder.notes, ["4 keys outside the selected modules (embedding, lstm) were not read (attention.* 2, fc.* 2)"])
        try assertVerifies(encoder, taggerFixture, "tagger by --modules")

        // One recurrent module: a bare module, its layers the chain's.
        let bare = try LoadedModel(contentsOf: tagger, modules: ["lstm"])
        XCTAssertTrue(bare.isBareRecurrentModule)
        XCTAssertEqual(bare.recurrentLayers.count, 3)
        XCTAssertEqual(ModelFingerprint(Model(layers: bare.recurrentLayers.map { .recurrent($0) })),
                       ModelFingerprint(Model(layers: encoder.recurrentLayers.map { .recurrent($0) })))
        let block = try LoadedModel(contentsOf: crnn, modules: ["SequenceModeling.1.rnn"])
        XCTAssertTrue(block.isBareRecurrentModule)
        XCTAssertEqual(block.summaries.map(\.name), ["SequenceModeling.1.rnn"])
    }

    func testModulesThatCannotFormAChainAreRefusedByName() throws {
        assertRefused(try LoadedModel(contentsOf: crnn, modules: ["Prediction", "SequenceModeling"]),
                      mentions: ["layer SequenceModeling.0.rnn (LSTM)", "input_size is 8, but the module before it, Prediction (Linear), gives 5 features"])
        assertRefused(try LoadedModel(contentsOf: crnn, modules: ["FeatureExtraction"]),
                      mentions: ["module.FeatureExtraction.ConvNet.0", "not a module rnnkit runs"])
        assertRefused(try LoadedModel(contentsOf: tagger, modules: ["attention"]),
                      mentions: ["attention", "not a module rnnkit runs"])
        assertRefused(try LoadedModel(contentsOf: tagger, modules: ["lstm", "fc"]),
                      mentions: ["layer fc (Linear)", "in_features is 16, but the module before it, lstm (LSTM) (bidirectional: 2 × 4), gives 8 features"])
        assertRefused(try LoadedModel(contentsOf: crnn, modules: ["Nope"]),
                      mentions: ["the module prefix 'Nope' selects no key", "module.SequenceModeling.*"])
        assertRefused(try LoadedModel(contentsOf: crnn, modules: ["SequenceModeling", "SequenceModeling.0"]),
                      mentions: ["overlap"])
        assertRefused(try LoadedModel(contentsOf: crnn, modules: [""]), mentions: ["empty"])
        assertRefused(try LoadedModel(contentsOf: tagger, modules: ["lstm.weight_ih_l0"]),
                      mentions: ["lstm: is only partly selected", "name a module by the key prefix of all its parameters"])
        assertRefused(try LoadedModel(contentsOf: crnn, architecture: crnnConfig, modules: ["SequenceModeling"]),
                      mentions: ["a model_config names the modules it uses"])
        assertRefused(try LoadedModel(contentsOf: fixture("keras/tfk_text_bilstm.h5"), modules: ["lstm"]),
                      mentions: ["reads a PyTorch state_dict"])
    }

    /// torch.compile's `_orig_mod.` around DataParallel's `module.`: whatever part the
    /// selection leaves out is looked under, and named in the note.
    func testWrapperPrefixesAreFoundWhetherStatedOrNot() throws {
        let folder = try temporaryFolder(self)
        let path = folder.appendingPathComponent("compiled.h5").path
        let source = try HDF5File.open(fixture("pytorch/clf_embed_lstm_last_hidden.h5")).root
        let config = try XCTUnwrap(source.attribute("model_config")?.stringValue)
        do {
            let root = try HDF5File.create(path).root
            for key in try source.datasetPaths() {
                let dataset = try source.dataset(key)
                try root.write("_orig_mod.module." + key, floats: try dataset.readFloats(), shape: dataset.shape)
            }
        }
        let expected = fixture("pytorch/clf_embed_lstm_last_hidden.fixture.h5")
        var document = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(config.utf8)) as? [String: Any])
        for (prefix, implied) in [("", "_orig_mod.module."), ("module.", "_orig_mod."), ("_orig_mod.module.", "")] {
            document["prefix"] = prefix
            let file = folder.appendingPathComponent("config-\(implied.count).json")
            try JSONSerialization.data(withJSONObject: document).write(to: file)
            let model = try LoadedModel(contentsOf: path, architecture: file.path)
            try assertVerifies(model, expected, "prefix '\(prefix)'")
            if implied.isEmpty {
                XCTAssertEqual(model.notes, [], prefix)
            } else {
                XCTAssertEqual(model.notes.count, 1, "\(model.notes)")
                XCTAssertTrue(model.notes[0].hasPrefix("every key starts with '\(implied)'"), model.notes[0])
                XCTAssertTrue(model.notes[0].contains(implied.hasPrefix("_orig_mod.") ? "torch.compile" : "nn.DataParallel"), model.notes[0])
            }
        }
    }

    // MARK: The skeleton

    func testTheSkeletonFollowsTheFileAndLeavesOutWhatRnnkitDoesNotRun() throws {
        let listing = try XCTUnwrap(StateDictListing.read(crnn, key: nil))
        XCTAssertEqual(listing.leftOut, ["module.FeatureExtraction (14 tensors, not a module rnnkit runs)"])
        let skeleton = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(listing.skeleton.utf8)) as? [String: Any])
        XCTAssertEqual(skeleton["prefix"] as? String, "module.")
        XCTAssertEqual(skeleton["version"] as? Int, 1)
        let modules = try XCTUnwrap(skeleton["modules"] as? [[String: Any]])
        // The blocks as they are: each BiLSTM, then its Linear; the readout to choose (or delete).
        XCTAssertEqual(modules.map { $0["name"] as? String ?? $0["type"] as? String ?? "?" },
                       ["SequenceModeling.0.rnn", "SequenceModeling.0.linear", "SequenceModeling.1.rnn", "Readout",
                        "SequenceModeling.1.linear", "Prediction"])
        XCTAssertTrue((modules[3]["mode"] as? String ?? "").hasPrefix("CHOOSE ONE: last_hidden"))

        let tagged = try XCTUnwrap(StateDictListing.read(tagger, key: nil))
        XCTAssertEqual(tagged.leftOut, ["attention (2 tensors, not a module rnnkit runs)",
                                        "fc (Linear 16 → 5: takes 16 features where the chain before it gives 8)"])
        XCTAssertTrue(tagged.modules.contains { $0.name == "attention.U" && $0.summary.contains("part of attention") })
        let taggedSkeleton = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(tagged.skeleton.utf8)) as? [String: Any])
        let taggedModules = try XCTUnwrap(taggedSkeleton["modules"] as? [[String: Any]])
        XCTAssertEqual(taggedModules.compactMap { $0["name"] as? String }, ["embedding", "lstm"])

        // The refusal of the file without a config carries the same, on one line.
        assertRefused(try LoadedModel(contentsOf: tagger),
                      mentions: ["holds 5 modules and no model_config", "left out: attention (2 tensors",
                                 #""modules": [{"type": "Embedding", "name": "embedding""#])
    }

    /// HDF5 lists keys alphabetically (`SequenceModeling.0.linear` before `.rnn`): the
    /// skeleton and a chain picked by prefix follow the widths, block by block.
    func testWithoutRegistrationOrderTheWidthsOrderTheBlocks() throws {
        let path = try temporaryFolder(self).appendingPathComponent("crnn.h5").path
        do {
            let source = try TorchSaveFile.read(crnn)
            XCTAssertTrue(source.keysInRegistrationOrder)
            let root = try HDF5File.create(path).root
            for name in try source.tensorNames(below: "") {
                let tensor = try XCTUnwrap(try source.tensor(name))
                if tensor.dtype.isFloat {
                    try root.write(name, floats: try tensor.readFloats(), shape: tensor.shape)
                } else {
                    try root.write(name, integers: [1], shape: [])
                }
            }
        }
        XCTAssertFalse(HDF5Container(try HDF5File.open(path)).keysInRegistrationOrder)
        let listing = try XCTUnwrap(StateDictListing.read(path, key: nil))
        let skeleton = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(listing.skeleton.utf8)) as? [String: Any])
        let modules = try XCTUnwrap(skeleton["modules"] as? [[String: Any]])
        XCTAssertEqual(modules.map { $0["name"] as? String ?? $0["type"] as? String ?? "?" },
                       ["SequenceModeling.0.rnn", "SequenceModeling.0.linear", "SequenceModeling.1.rnn", "Readout",
                        "SequenceModeling.1.linear", "Prediction"])
        let chain = try LoadedModel(contentsOf: path, modules: ["SequenceModeling", "Prediction"])
        XCTAssertEqual(chain.summaries.map(\.name), ["SequenceModeling.0.rnn", "SequenceModeling.0.linear",
                                                    "SequenceModeling.1.rnn", "SequenceModeling.1.linear", "Prediction"])
        try assertVerifies(chain, crnnFixture, "crnn in HDF5 by --modules")
    }

    /// The skeleton, as printed, is a config: with the readout deleted (the CRNN's blocks
    /// apply their Linears at every step) it reads the CRNN and verifies against torch.
    func testTheSkeletonWithItsReadoutDeletedVerifies() throws {
        let listing = try XCTUnwrap(StateDictListing.read(crnn, key: nil))
        let deleted = listing.skeleton.split(separator: "\n").filter { !$0.contains("\"Readout\"") }.joined(separator: "\n")
        let config = try temporaryFolder(self).appendingPathComponent("crnn.json")
        try Data(deleted.utf8).write(to: config)
        let model = try LoadedModel(contentsOf: crnn, architecture: config.path)
        XCTAssertEqual(model.notes, [Self.crnnUnreadNote])
        try assertVerifies(model, crnnFixture, "crnn from its skeleton")
    }

    // MARK: Widths and names in errors

    func testWidthsThatDoNotChainAreRefusedNamingTheConfigsModules() throws {
        let folder = try temporaryFolder(self)
        func config(_ edit: (inout [[String: Any]]) -> Void) throws -> String {
            var document = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: crnnConfig))) as? [String: Any])
            var modules = try XCTUnwrap(document["modules"] as? [[String: Any]])
            edit(&modules)
            document["modules"] = modules
            let file = folder.appendingPathComponent("\(UUID().uuidString).json")
            try JSONSerialization.data(withJSONObject: document).write(to: file)
            return file.path
        }
        // Both LSTMs first, then the Linears: the wrong order an alphabetical guess gives.
        let swapped = try config { $0.swapAt(1, 2) }
        assertRefused(try LoadedModel(contentsOf: crnn, architecture: swapped),
                      mentions: ["model_config modules[1]", "layer SequenceModeling.1.rnn (LSTM)",
                                 "input_size is 6, but the module before it, SequenceModeling.0.rnn (LSTM) (bidirectional: 2 × 6), gives 12 features"])
        // inspect reads the same way: the CLI refuses it too, naming the module.
        let inspected = try rnnkit("inspect", crnn, "--architecture", swapped)
        XCTAssertEqual(inspected.status, 2)
        XCTAssertTrue(inspected.stderr.contains("layer SequenceModeling.1.rnn (LSTM): input_size is 6"), inspected.stderr)
        let embeddingLater = try config { $0.append(["type": "Embedding", "name": "emb", "num_embeddings": 4, "embedding_dim": 3]) }
        assertRefused(try LoadedModel(contentsOf: crnn, architecture: embeddingLater),
                      mentions: ["model_config modules[5]", "layer emb (Embedding)", "comes after Prediction (Linear)"])
    }

    /// Errors the engine finds when the model is prepared or run name the config's modules,
    /// never the engine's layer indices (`layer 2 (readout)`).
    func testEngineErrorsNameTheConfigsModules() throws {
        let folder = try temporaryFolder(self)
        let twoReadouts = #"{"modules": [{"type": "LSTM", "name": "rnn", "input_size": 3, "hidden_size": 4}, {"type": "Readout", "mode": "last_hidden"}, {"type": "Readout", "mode": "mean"}]}"#
        let path = folder.appendingPathComponent("lstm.h5").path
        do {
            let root = try HDF5File.create(path).root
            try root.write("rnn.weight_ih_l0", floats: [Float](repeating: 0.1, count: 16 * 3), shape: [16, 3])
            try root.write("rnn.weight_hh_l0", floats: [Float](repeating: 0.1, count: 16 * 4), shape: [16, 4])
            try root.write("rnn.bias_ih_l0", floats: [Float](repeating: 0.1, count: 16), shape: [16])
            try root.write("rnn.bias_hh_l0", floats: [Float](repeating: 0.1, count: 16), shape: [16])
        }
        let config = folder.appendingPathComponent("config.json")
        try Data(twoReadouts.utf8).write(to: config)
        let model = try LoadedModel(contentsOf: path, architecture: config.path)
        assertRefused(try model.run(.features(Tensor(zeros: [1, 2, 3]))),
                      mentions: ["layer modules[2] (Readout)", "time axis"])
        let chain = try LoadedModel(contentsOf: crnn, modules: ["SequenceModeling", "Prediction"])
        assertRefused(try chain.run(.features(Tensor(zeros: [1, 2, 7]))),
                      mentions: ["layer SequenceModeling.0.rnn (LSTM)", "7 features"])
        let tagged = try LoadedModel(contentsOf: tagger, modules: ["lstm"])
        assertRefused(try tagged.run(.features(Tensor(zeros: [1, 2, 5])), initialStates: [
            RecurrentState(h: Tensor(zeros: [2, 1, 4]), c: Tensor(zeros: [2, 1, 4])),
            RecurrentState(h: Tensor(zeros: [2, 1, 5]), c: Tensor(zeros: [2, 1, 4])),
            RecurrentState(h: Tensor(zeros: [2, 1, 4]), c: Tensor(zeros: [2, 1, 4])),
        ]), mentions: ["layer lstm (LSTM, layer 1)"])
    }

    // MARK: The command line

    /// The CRNN fixture's inputs and outputs with no attributes, as a user's own fixture of
    /// the recurrent part would be (no `architecture` to follow the model around).
    private func plainFixture(_ folder: URL) throws -> String {
        let path = folder.appendingPathComponent("crnn.fixture.h5").path
        let source = try Fixture(contentsOf: crnnFixture)
        guard case let .features(x) = source.input else { throw XCTSkip("the CRNN fixture takes features") }
        let root = try HDF5File.create(path).root
        try root.write("inputs", floats: x.values, shape: x.shape)
        for (name, tensor) in source.expected { try root.write("expected/\(name)", floats: tensor.values, shape: tensor.shape) }
        return path
    }

    /// README's newcomer path on a CRNN checkpoint: inspect (the skeleton, what it leaves
    /// out), the skeleton saved with its readout deleted, verify, convert, verify the converted
    /// file; and the same with one option, `--modules`. Notes go to stderr, one line each.
    func testTheNewcomerPathOnACRNNCheckpoint() throws {
        let folder = try temporaryFolder(self)
        let fixtureFile = try plainFixture(folder)
        let inspected = try rnnkit("inspect", crnn)
        XCTAssertEqual(inspected.status, 0, inspected.stderr)
        XCTAssertEqual(inspected.stderr, "")
        XCTAssertTrue(inspected.stdout.contains("left out of the skeleton:\n  module.FeatureExtraction (14 tensors, not a module rnnkit runs)\n"),
                      inspected.stdout)
        XCTAssertTrue(inspected.stdout.contains("--modules PREFIX[,PREFIX…]"), inspected.stdout)
        let skeleton = try XCTUnwrap(inspected.stdout.range(of: "\n{").map { String(inspected.stdout[inspected.stdout.index(after: $0.lowerBound)...]) })
        let config = folder.appendingPathComponent("crnn.json")
        try Data(skeleton.split(separator: "\n").filter { !$0.contains("\"Readout\"") }.joined(separator: "\n").utf8).write(to: config)

        let verified = try rnnkit("verify", crnn, fixtureFile, "--architecture", config.path)
        XCTAssertEqual(verified.status, 0, verified.stdout + verified.stderr)
        XCTAssertTrue(verified.stdout.contains("ok       output [3, 7, 5]"), verified.stdout)
        XCTAssertEqual(verified.stderr, "note: \(Self.crnnUnreadNote)\n")

        let keras = folder.appendingPathComponent("crnn.keras").path
        let converted = try rnnkit("convert", crnn, keras, "--to", "keras3", "--architecture", config.path)
        XCTAssertEqual(converted.status, 0, converted.stderr)
        XCTAssertEqual(converted.stderr, "note: \(Self.crnnUnreadNote)\n")
        let convertedVerified = try rnnkit("verify", keras, fixtureFile)
        XCTAssertEqual(convertedVerified.status, 0, convertedVerified.stdout + convertedVerified.stderr)
        XCTAssertEqual(convertedVerified.stderr, "")

        // One option instead of a config.
        let selectionNotes = "note: every key starts with 'module.' (the prefix nn.DataParallel / DistributedDataParallel adds) and the selected prefixes do not state it: the modules were read under it\n"
            + "note: 14 keys outside the selected modules (SequenceModeling, Prediction) were not read (module.FeatureExtraction.* 14)\n"
        let byModules = try rnnkit("verify", crnn, fixtureFile, "--modules", "SequenceModeling,Prediction")
        XCTAssertEqual(byModules.status, 0, byModules.stdout + byModules.stderr)
        XCTAssertEqual(byModules.stdout, verified.stdout)
        XCTAssertEqual(byModules.stderr, selectionNotes)
        let safetensors = folder.appendingPathComponent("crnn.safetensors").path
        let written = try rnnkit("convert", crnn, safetensors, "--to", "pytorch", "--modules", "SequenceModeling,Prediction")
        XCTAssertEqual(written.status, 0, written.stderr)
        XCTAssertEqual(written.stderr, selectionNotes)
        XCTAssertEqual(try rnnkit("verify", safetensors, fixtureFile).status, 0)
        for command in [["inspect", crnn], ["bench", crnn, "--time", "3", "--repeat", "1", "--warmup", "0"]] {
            let result = try rnnkit(command + ["--modules", "SequenceModeling,Prediction"])
            XCTAssertEqual(result.status, 0, "\(command[0]): \(result.stderr)")
            XCTAssertEqual(result.stderr, selectionNotes, command[0])
        }
        let run = try rnnkit("run", crnn, "--modules", "SequenceModeling,Prediction", "--input", fixtureFile,
                             "--output", folder.appendingPathComponent("out.h5").path)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stderr, selectionNotes)
        // With a config, --modules is refused; and over several cases it goes in a manifest.
        let both = try rnnkit("verify", crnn, fixtureFile, "--modules", "Prediction", "--architecture", config.path)
        XCTAssertEqual(both.status, 2)
        XCTAssertTrue(both.stderr.contains("pass one or the other"), both.stderr)
        let manifest = folder.appendingPathComponent("cases.yml")
        try Data("- {model: \(crnn), fixture: \(fixtureFile), modules: \"SequenceModeling,Prediction\", name: crnn}\n".utf8).write(to: manifest)
        let suite = try rnnkit("verify", "--manifest", manifest.path)
        XCTAssertEqual(suite.status, 0, suite.stdout + suite.stderr)
        XCTAssertTrue(suite.stdout.hasPrefix("ok       \(fixtureFile)"), suite.stdout)
        XCTAssertEqual(suite.stderr, selectionNotes.split(separator: "\n").map { "note: crnn: " + $0.dropFirst("note: ".count) + "\n" }.joined())
    }

    // MARK: Converting the recurrent part

    /// Just the recurrent part, to every target: each written file, read back, computes
    /// torch's outputs; a PyTorch target keeps the config's keys (no wrapper, no front end).
    func testTheRecurrentPartConvertsToEveryTarget() throws {
        let folder = try temporaryFolder(self)
        let targets: [(String, ConversionTarget)] = [("out.pt", .pytorch), ("out.safetensors", .pytorch), ("out.h5", .pytorch),
                                                     ("out.keras.h5", .keras), ("out.keras", .keras3)]
        let sources: [(name: String, file: String, fixture: String, architecture: String?, modules: [String]?, padding: PaddingID?)] = [
            ("crnn config", crnn, crnnFixture, crnnConfig, nil, nil),
            ("crnn modules", crnn, crnnFixture, nil, ["SequenceModeling", "Prediction"], nil),
            ("tagger config", tagger, taggerFixture, taggerConfig, nil, nil),
            ("tagger modules", tagger, taggerFixture, nil, ["embedding", "lstm"], .id(0)),
        ]
        for source in sources {
            for (index, (name, target)) in targets.enumerated() {
                let output = folder.appendingPathComponent("\(index)-\(source.name.replacingOccurrences(of: " ", with: "-"))-\(name)").path
                let report = try Converter.convert(source.file, to: target, output: output, architecture: source.architecture,
                                                   modules: source.modules, paddingID: target == .pytorch ? nil : source.padding)
                XCTAssertEqual(report.readingNotes.count, source.file == crnn ? 2 : 1, "\(source.name) → \(name)")
                let converted = try LoadedModel(contentsOf: output)
                XCTAssertEqual(converted.notes, [], "\(source.name) → \(name): the written file holds only the part")
                try assertVerifies(converted, source.fixture, "\(source.name) → \(name)")
                if name == "out.pt" {
                    let keys = try TorchSaveFile.read(output).tensorNames(below: "")
                    XCTAssertFalse(keys.contains { $0.hasPrefix("module.") || $0.contains("FeatureExtraction") || $0.contains("attention") },
                                   "\(source.name): \(keys)")
                }
            }
        }
        // The tagger's chain by prefix has no padding_idx: a Keras target needs the padding id.
        assertRefused(try Converter.convert(tagger, to: .keras3, output: folder.appendingPathComponent("no.keras").path,
                                            modules: ["embedding", "lstm"]),
                      mentions: ["layer embedding", "padding"])
    }
}
