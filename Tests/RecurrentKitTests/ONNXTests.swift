import Foundation
import FuzzEntryPoints
import RecurrentEngine
import SwiftProtobuf
import TestSupport
import XCTest
@testable import RecurrentKit

/// The ONNX reader (spec/onnx-layout.md): the graphs `torch.onnx.export` and `onnx.helper`
/// write (fixtures/onnx/generate_models.py, expected outputs from ONNX Runtime), the graphs
/// it refuses naming the node, and hostile protobufs.
final class ONNXTests: XCTestCase {
    private var folder: String { fixture("onnx") }

    private func fixtures(in subfolder: String = "") throws -> [String] {
        let path = subfolder.isEmpty ? folder : folder + "/" + subfolder
        return try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".fixture.h5") }.sorted()
            .map { path + "/" + $0 }
    }

    /// Every fixture's model reads as ONNX and computes ONNX Runtime's outputs at atol 1e-5,
    /// rtol 1e-4, each expected dataset compared (a fixture without one fails).
    func testEveryFixtureMatchesONNXRuntime() throws {
        let paths = try fixtures()
        XCTAssertEqual(paths.count, 78, "fixtures/onnx lost or gained fixtures")
        var exercised: Set<String> = []
        for path in paths {
            let fixture = try Fixture(contentsOf: path)
            let model = try LoadedModel(contentsOf: try XCTUnwrap(fixture.modelPath, path))
            XCTAssertEqual(model.layout, .onnx, path)
            let verification = try Verification(model: model, fixture: fixture)
            XCTAssertFalse(verification.comparisons.isEmpty, path)
            for comparison in verification.comparisons {
                XCTAssertTrue(comparison.passed, "\(path) \(comparison.name): max abs error \(comparison.maxAbsoluteError)")
            }
            exercised.formUnion(fixture.exercises)
            if fixture.exercises.contains("lengths") { XCTAssertNotNil(fixture.lengths, path) }
            if fixture.exercises.contains("initial-state") { XCTAssertNotNil(fixture.h0, path) }
        }
        for tag in ["lstm", "gru", "rnn", "rnn-relu", "bidirectional", "multilayer", "lengths", "initial-state", "tokens",
                    "no-bias", "constant-folding", "no-constant-folding", "layout1", "packed", "linear-before-reset-0", "hard-sigmoid",
                    "tf2onnx", "reverse", "peepholes", "clip", "input-forget", "activations-per-direction",
                    "activation-parameters",
                    "dynamo", "fixed-batch-and-time", "keras3-id-wrap", "external-data", "time-major"] {
            XCTAssertTrue(exercised.contains(tag), "no fixture exercises \(tag)")
        }
    }

    /// Lengths and initial states that ONNX Runtime could not be given (a graph without
    /// `sequence_lens`, without `initial_h`) are refused, not applied: applied, they would give
    /// numbers the model never computes, and a fixture holding them could verify as ok.
    func testLengthsAndStatesAGraphDoesNotTakeAreRefused() throws {
        let model = try LoadedModel(contentsOf: folder + "/torch_gru_bare_fold.onnx")
        let features = try XCTUnwrap(model.inputFeatures)
        let x = Tensor(unchecked: [2, 3, features], values: (0..<(6 * features)).map { Float($0 % 7) / 7 })
        XCTAssertNoThrow(try model.run(.features(x)))
        XCTAssertThrowsError(try model.run(.features(x), lengths: [3, 2])) { error in
            XCTAssertEqual("\(error)", folder + "/torch_gru_bare_fold.onnx: lengths: are not taken by this model: the ONNX graph has no sequence_lens input (ONNX Runtime runs it over every step); run it without lengths")
        }
        let states = [RecurrentState(h: Tensor(uncheckedZeros: [1, 2, model.recurrentLayers[0].outputSize]), c: nil)]
        XCTAssertThrowsError(try model.run(.features(x), initialStates: states)) { error in
            XCTAssertTrue("\(error)".hasSuffix("initial states: are not taken by this model: the ONNX graph has no initial_h or initial_c input (its states start at zero); run it without them"), "\(error)")
        }
        XCTAssertThrowsError(try model.makeStream(batch: 2, initialStates: states))
        // A graph that takes both takes them.
        let taking = try LoadedModel(contentsOf: folder + "/node_lstm_bi_lengths_states.onnx")
        let fixture = try Fixture(contentsOf: folder + "/node_lstm_bi_lengths_states.fixture.h5")
        XCTAssertNotNil(fixture.lengths)
        XCTAssertTrue(try Verification(model: taking, fixture: fixture).comparisons.allSatisfy(\.passed))
    }

    /// A graph exported without dynamic axes (the dynamo exporter's default) fixes the batch
    /// and time in its input, its reshapes and its zero states (constants fed to `initial_h`,
    /// which are not graph inputs): it is read with those sizes, and a run of other sizes is
    /// refused, as ONNX Runtime refuses it.
    func testAGraphWithAFixedBatchAndTimeRefusesOtherSizes() throws {
        let path = folder + "/dynamo_lstm_last_step_linear_static.onnx"
        let model = try LoadedModel(contentsOf: path)
        XCTAssertEqual(model.reading.fixedBatch, 3)
        XCTAssertEqual(model.reading.fixedTime, 7)
        XCTAssertNotNil(model.reading.initialStatesRefusal, "its zero states are constants, not inputs")
        let x = { (b: Int, t: Int) in Tensor(unchecked: [b, t, 3], values: (0..<(b * t * 3)).map { Float($0 % 5) / 5 }) }
        XCTAssertNoThrow(try model.run(.features(x(3, 7))))
        XCTAssertThrowsError(try model.run(.features(x(2, 7)))) { error in
            XCTAssertEqual("\(error)", "\(path): input: has batch 2; this model was exported for batch 3 only (its graph input declares it), and its own runtime refuses other sizes")
        }
        XCTAssertThrowsError(try model.run(.features(x(3, 6)))) { error in
            XCTAssertEqual("\(error)", "\(path): input: has time 6; this model was exported for time 7 only (its graph input declares it), and its own runtime refuses other sizes")
        }
        XCTAssertThrowsError(try model.makeStream(batch: 2)) { error in
            XCTAssertTrue("\(error)".contains("has batch 2; this model was exported for batch 3 only"), "\(error)")
        }
        let shown = try rnnkit(["inspect", path])
        XCTAssertTrue(shown.stdout.contains("input=input fixed batch=3 fixed time=7\n"), shown.stdout)
        // The same model exported with a dynamic batch and time takes any.
        let dynamic = try LoadedModel(contentsOf: folder + "/dynamo_lstm_2layer_bi_last_step_linear.onnx")
        XCTAssertNil(dynamic.reading.fixedBatch)
        XCTAssertNil(dynamic.reading.fixedTime)
    }

    /// Keras 3's Embedding through tf2onnx: the graph wraps negative ids,
    /// `where(ids < 0, ids + vocabulary, ids)`, before its Gather (Add, Less, Not, Cast, Mul,
    /// Add). Read as that wrap, the model verifies against ONNX Runtime and Keras 3; ids outside
    /// `0..<vocabulary` are refused at run, as for the same model read from its `.keras` file
    /// (Keras 3 and ONNX Runtime give id −1 the last row: checked by the generator). Any other
    /// arithmetic on the ids is refused naming the node.
    func testKeras3EmbeddingWrapThroughTf2onnx() throws {
        let onnxPath = folder + "/tf2onnx_keras3_embed_lstm.onnx", kerasPath = folder + "/tf2onnx_keras3_embed_lstm.keras"
        let fixture = try Fixture(contentsOf: folder + "/tf2onnx_keras3_embed_lstm.fixture.h5")
        var ids = (0..<21).map { $0 % 11 }
        for path in [onnxPath, kerasPath] {
            let model = try LoadedModel(contentsOf: path)
            XCTAssertTrue(try Verification(model: model, fixture: fixture).comparisons.allSatisfy(\.passed), path)
            ids[0] = -1
            XCTAssertThrowsError(try model.run(.tokens(ids: ids, batch: 3, time: 7)), path) { error in
                XCTAssertTrue("\(error)".hasSuffix("token id -1 at [0, 0] is outside the vocabulary 0..<11"), "\(error)")
            }
            ids[0] = 11
            XCTAssertThrowsError(try model.run(.tokens(ids: ids, batch: 3, time: 7)), path)
        }
        func edited(_ edit: (inout Onnx_GraphProto) throws -> Void) throws -> String {
            var proto = try Onnx_ModelProto(serializedBytes: Data(contentsOf: URL(fileURLWithPath: onnxPath)))
            try edit(&proto.graph)
            return try refusal([UInt8](proto.serializedData())).error
        }
        // A wrap by another number than the table's rows.
        XCTAssertEqual(try edited { graph in
            let i = try XCTUnwrap(graph.initializer.firstIndex { $0.name == "sequential_3_1/embedding_1/strided_slice:0" })
            graph.initializer[i].rawData = Data([10, 0, 0, 0])
        }, "M: node sequential_3_1/embedding_1/GatherV2 (Gather): gathers rows at token ids changed by arithmetic other than Keras 3's where(ids < 0, ids + vocabulary, ids)")
        // The ids shifted, not wrapped.
        XCTAssertEqual(try edited { graph in
            let i = try XCTUnwrap(graph.node.firstIndex { $0.opType == "Gather" })
            graph.node[i].input[1] = "sequential_3_1/embedding_1/add:0"
        }, "M: node sequential_3_1/embedding_1/GatherV2 (Gather): gathers rows at token ids changed by arithmetic other than Keras 3's where(ids < 0, ids + vocabulary, ids)")
        // The branches swapped: ids + vocabulary where the ids are not negative.
        XCTAssertEqual(try edited { graph in
            let i = try XCTUnwrap(graph.node.firstIndex { $0.opType == "Not" })
            graph.node[i].opType = "Identity"
        }, "M: node sequential_3_1/embedding_1/SelectV2__989 (Mul): computes on the token ids (Keras 3's Embedding wraps negative ids, where(ids < 0, ids + vocabulary, ids)); rnnkit reads ids only as the indices of an embedding's Gather")
    }

    /// External data (the dynamo exporter's default): read from a regular file in the model's
    /// own folder, by a plain relative path that resolves to itself, with one link, its offset
    /// and length within the file and giving exactly the tensor's bytes; everything else is one
    /// line naming the initializer, and a model given as bytes has no folder to read from.
    func testExternalDataIsReadOnlyFromTheModelsFolder() throws {
        let manager = FileManager.default
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("rnnkit-onnx-external-\(UUID().uuidString)").path
        defer { try? manager.removeItem(atPath: root) }
        let name = "dynamo_lstm_2layer_bi_bare_external"
        let fixture = try Fixture(contentsOf: folder + "/\(name).fixture.h5")
        func copy(into directory: String) throws -> String {
            try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for file in ["\(name).onnx", "\(name).onnx.data"] {
                try manager.copyItem(atPath: folder + "/" + file, toPath: directory + "/" + file)
            }
            return directory + "/\(name).onnx"
        }
        let model = try copy(into: root + "/model")
        XCTAssertTrue(try Verification(model: LoadedModel(contentsOf: model), fixture: fixture).comparisons.allSatisfy(\.passed))
        let original = try Onnx_ModelProto(serializedBytes: Data(contentsOf: URL(fileURLWithPath: model)))
        // The first initializer kept outside: val_112 [2, 16, 3], bytes 0..<384.
        func edited(_ entries: [String: String], _ at: String = root + "/model") throws -> String {
            var proto = original
            let i = try XCTUnwrap(proto.graph.initializer.firstIndex { $0.name == "val_112" })
            for (key, value) in entries {
                let k = try XCTUnwrap(proto.graph.initializer[i].externalData.firstIndex { $0.key == key })
                proto.graph.initializer[i].externalData[k].value = value
            }
            let path = at + "/edited.onnx"
            try proto.serializedData().write(to: URL(fileURLWithPath: path))
            var message = ""
            XCTAssertThrowsError(try LoadedModel(contentsOf: path)) { message = "\($0)".replacingOccurrences(of: path, with: "M") }
            return message
        }
        let outside = "which is not a plain path inside the model's folder (absolute, empty, . or .. components); refused"
        XCTAssertEqual(try edited(["location": "../model/\(name).onnx.data"]), "M: initializer val_112: keeps its values in ../model/\(name).onnx.data, \(outside)")
        XCTAssertEqual(try edited(["location": root + "/model/\(name).onnx.data"]), "M: initializer val_112: keeps its values in \(root)/model/\(name).onnx.data, \(outside)")
        XCTAssertEqual(try edited(["location": "./\(name).onnx.data"]), "M: initializer val_112: keeps its values in ./\(name).onnx.data, \(outside)")
        // Symbolic links, to a file inside the folder and to one outside it.
        try manager.createSymbolicLink(atPath: root + "/model/inside.data", withDestinationPath: "\(name).onnx.data")
        let outsideCopy = try copy(into: root + "/elsewhere")
        try manager.createSymbolicLink(atPath: root + "/model/outside.data", withDestinationPath: outsideCopy + ".data")
        for link in ["inside.data", "outside.data"] {
            XCTAssertEqual(try edited(["location": link]), "M: initializer val_112: keeps its values in \(link), whose real path is not that file in the model's folder (a symbolic link, or a path out of it); refused")
        }
        // A hard link (of a file that could lie anywhere on the file system).
        _ = try copy(into: root + "/hard")
        try manager.linkItem(atPath: root + "/hard/\(name).onnx.data", toPath: root + "/hard/linked.data")
        XCTAssertEqual(try edited(["location": "linked.data"], root + "/hard"), "M: initializer val_112: keeps its values in linked.data, which has 2 hard links (one may lie outside the model's folder); refused")
        // Not a regular file, missing, offsets and lengths past the file or not the tensor's.
        try manager.createDirectory(atPath: root + "/model/folder.data", withIntermediateDirectories: true)
        XCTAssertEqual(try edited(["location": "folder.data"]), "M: initializer val_112: keeps its values in folder.data, which is not a regular file; refused")
        XCTAssertEqual(try edited(["location": "missing.data"]), "M: initializer val_112: keeps its values in missing.data, which cannot be found beside the model")
        XCTAssertEqual(try edited(["offset": "2300"]), "M: initializer val_112: reads bytes 2300..<2684 of \(name).onnx.data, which holds 2432")
        XCTAssertEqual(try edited(["offset": "9223372036854775"]), "M: initializer val_112: reads bytes 9223372036854775..<9223372036855159 of \(name).onnx.data, which holds 2432")
        XCTAssertEqual(try edited(["length": "100"]), "M: initializer val_112: reads 100 bytes of \(name).onnx.data; dims [2, 16, 3] hold 384")
        XCTAssertEqual(try edited(["offset": "-1"]), "M: initializer val_112: has external_data offset -1, not a number of bytes")
        // From bytes, without a folder.
        var message = ""
        XCTAssertThrowsError(try ONNXFormat().read(FormatSource(bytes: [UInt8](Data(contentsOf: URL(fileURLWithPath: model))), name: "m.onnx"),
                                                   options: ReadOptions())) {
            message = "\($0)"
        }
        XCTAssertEqual(message, "m.onnx: initializer val_112: keeps its values in external data (data_location = EXTERNAL), and this model was given without its folder")
    }

    /// Bytes a protobuf parser takes but the recognition does not (a ModelProto field with
    /// another wire type: the fuzzers' finding, fixtures/fuzz/regressions/FuzzONNX) are
    /// refused by the ONNX read too: what reads as ONNX is what is recognised as ONNX.
    func testTheReadRefusesWhatTheRecognitionRefuses() throws {
        let path = fixture("fuzz/regressions/FuzzONNX/field6_wire_type_0.onnx")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertNoThrow(try Onnx_ModelProto(serializedBytes: bytes), "a protobuf parser takes it")
        XCTAssertThrowsError(try LoadedModel(contentsOf: path)) { error in
            XCTAssertTrue("\(error)".contains("is none of the files rnnkit reads"), "\(error)")
        }
        let source = FormatSource(bytes: bytes, name: "m.onnx")
        XCTAssertThrowsError(try ONNXFormat().read(source, options: ReadOptions())) { error in
            XCTAssertEqual("\(error)", "m.onnx: is not an ONNX ModelProto as exporters write it: ir_version first, then ModelProto's fields with their wire types up to the graph (spec/architecture.md, \"Which container\")")
        }
        XCTAssertNotNil(FuzzEntry.onnx(bytes))
    }

    /// The command line verifies the whole folder: every case passes.
    func testVerifyFolder() throws {
        let result = try rnnkit(["verify", folder])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.hasSuffix("78 passed, 0 failed, 0 errors\n"), result.stdout)
    }

    /// A fixture's model read with another gate order gives other numbers: the fixtures can fail.
    func testSwappedGateOrderFails() throws {
        let path = folder + "/torch_lstm_bare_fold.fixture.h5"
        let fixture = try Fixture(contentsOf: path)
        let model = try LoadedModel(contentsOf: try XCTUnwrap(fixture.modelPath))
        guard case var .recurrent(layer) = model.model.layers[0] else { return XCTFail("not recurrent") }
        for d in layer.directions.indices { layer.directions[d].gateOrder = [.input, .forget, .cell, .output] }
        let engine = try Engine(model: Model(layers: [.recurrent(layer)]))
        let result = try engine.run(fixture.input)
        let expected = try XCTUnwrap(fixture.expected.first { $0.name == "output" }?.tensor)
        XCTAssertFalse(Comparison(name: "output", actual: result.output, expected: expected, atol: 1e-5, rtol: 1e-4).passed)
    }

    /// `inspect` shows the graph (opset, producer, operators) and each node with its ONNX
    /// attributes and gate order.
    func testInspectShowsTheGraph() throws {
        let result = try rnnkit(["inspect", folder + "/node_gru_lbr1_bi_lengths.onnx"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("ir_version=10 opset=22 producer=rnnkit-fixtures operators=GRU 1 input=X sequence_lens=sequence_lens"), result.stdout)
        XCTAssertTrue(result.stdout.contains("#0 (GRU): input=3 hidden_size=4 direction=bidirectional layout=0 activations=Sigmoid, Tanh, Sigmoid, Tanh bias (B)=true linear_before_reset=1 gates=[update,reset,new]"), result.stdout)
        XCTAssertEqual(result.stderr, "note: the graph takes time-major input [time, batch, features] and gives a recurrent node's Y [time, directions 2, batch, hidden 4]; rnnkit takes and gives batch-first tensors, [batch, time, features] with the directions side by side\n")
    }

    /// `convert` writes an ONNX model as PyTorch where nn modules compute the same (read back
    /// and compared weight for weight), and the written file matches ONNX Runtime's fixture;
    /// a GRU with `linear_before_reset = 0` is refused.
    func testConvertToPyTorchWhereExact() throws {
        let out = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("rnnkit-onnx-\(UUID().uuidString).pt").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        // With its Python: the layers' names come from node names such as "/rnn/LSTM", and a module
        // name may not start with '_' (nor may a Keras layer's): "rnn_LSTM".
        let converted = try rnnkit(["convert", folder + "/torch_packed_lstm_bi_linear_fold.onnx", out, "--to", "pytorch",
                                    "--emit-python", out + ".py"])
        defer { try? FileManager.default.removeItem(atPath: out + ".py") }
        XCTAssertEqual(converted.status, 0, converted.stderr)
        XCTAssertTrue(try String(contentsOfFile: out + ".py", encoding: .utf8).contains("rnn_LSTM"))
        let verified = try rnnkit(["verify", out, folder + "/torch_packed_lstm_bi_linear_fold.fixture.h5"])
        XCTAssertEqual(verified.status, 0, verified.stdout + verified.stderr)
        let refused = try rnnkit(["convert", folder + "/node_gru_lbr0.onnx", out + ".2.pt", "--to", "pytorch"])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.stderr.contains("nn.GRU cannot express"), refused.stderr)
    }

    /// A bare recurrent module in ONNX (recurrent nodes alone, outputs `output, h_n[, c_n]`)
    /// converts to the one torch module it is: a state_dict with a bare nn.LSTM's / nn.GRU's /
    /// nn.RNN's keys and no model_config, so the fixture's `h_n` and `c_n` still verify (they
    /// did not when it was written as a whole model). An nn.RNN with relu, whose bare keys
    /// cannot say relu, keeps a model_config.
    func testBareModuleConvertsToABareTorchModule() throws {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("rnnkit-onnx-bare-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for name in ["torch_lstm_2layer_bi_bare_nofold", "dynamo_gru_2layer_bi_bare", "torch_rnn_tanh_bare_fold", "node_lstm_bi_lengths_states",
                     "torch_lstm_nobias_bare_fold"] {
            let out = directory + "/\(name).pt"
            let converted = try rnnkit(["convert", folder + "/\(name).onnx", out, "--to", "pytorch"])
            XCTAssertEqual(converted.status, 0, converted.stderr)
            let written = try LoadedModel(contentsOf: out)
            XCTAssertTrue(written.isBareRecurrentModule, name)
            XCTAssertNil(written.pytorchSource?.document, name)
            let verified = try rnnkit(["verify", out, folder + "/\(name).fixture.h5"])
            XCTAssertEqual(verified.status, 0, name + verified.stdout + verified.stderr)
            XCTAssertTrue(verified.stdout.contains("h_n"), verified.stdout)
        }
        let relu = directory + "/relu.pt"
        XCTAssertEqual(try rnnkit(["convert", folder + "/torch_rnn_relu_bi_bare_fold.onnx", relu, "--to", "pytorch"]).status, 0)
        XCTAssertNotNil(try LoadedModel(contentsOf: relu).pytorchSource?.document)
    }

    /// Each refused graph gives one line naming the node, its operator and the reason; exit 2.
    func testRefusals() throws {
        let cases: [(String, String)] = [
            ("refused/dynamo_rnn_tanh_bare.onnx", "node node_Slice_22 (Slice): takes step 0 of the sequence alone: the recurrence is unrolled into per-step operators (MatMul, Add, Tanh/Relu for each step, as torch.onnx.export's dynamo exporter writes nn.RNN), with the sequence length fixed at export; rnnkit reads a recurrence written as one LSTM, GRU or RNN operator"),
            ("refused/dynamo_rnn_relu_bi_bare.onnx", "node node_Slice_22 (Slice): takes step 0 of the sequence alone: the recurrence is unrolled into per-step operators (MatMul, Add, Tanh/Relu for each step, as torch.onnx.export's dynamo exporter writes nn.RNN), with the sequence length fixed at export; rnnkit reads a recurrence written as one LSTM, GRU or RNN operator"),
            ("refused/dynamo_rnn_relu_seq_tanh.onnx", "node node_Slice_22 (Slice): takes step 0 of the sequence alone: the recurrence is unrolled into per-step operators (MatMul, Add, Tanh/Relu for each step, as torch.onnx.export's dynamo exporter writes nn.RNN), with the sequence length fixed at export; rnnkit reads a recurrence written as one LSTM, GRU or RNN operator"),
            ("refused/dynamic_quantize_lstm.onnx", "node #0 → Y (com.microsoft.DynamicQuantizeLSTM): is a quantized model (int8 weights, activations quantized at run time); its results cannot be exact in float, so rnnkit does not read it"),
            ("refused/loop.onnx", "node while_loop (Loop): is control flow; rnnkit reads recurrent models whose recurrence is one LSTM, GRU or RNN operator (tf2onnx writes a Loop for masked layers and GRU reset_after=False)"),
            ("refused/tf2onnx_keras3_gru_last_dense_softmax.onnx", "node sequential_2_1/gru_1/while_loop (Loop): is control flow; rnnkit reads recurrent models whose recurrence is one LSTM, GRU or RNN operator (tf2onnx writes a Loop for masked layers and GRU reset_after=False)"),
            ("refused/tf2onnx_tfkeras_gru_reset_before.onnx", "node sequential_4/gru_1/while_loop (Loop): is control flow; rnnkit reads recurrent models whose recurrence is one LSTM, GRU or RNN operator (tf2onnx writes a Loop for masked layers and GRU reset_after=False)"),
            ("refused/tf2onnx_tfkeras_masked_lstm.onnx", "node sequential_5/lstm_3/PartitionedCall/while_loop (Loop): is control flow; rnnkit reads recurrent models whose recurrence is one LSTM, GRU or RNN operator (tf2onnx writes a Loop for masked layers and GRU reset_after=False)"),
            ("refused/lstm_thresholdedrelu_default_alpha.onnx", "node #0 → Y (LSTM): has the activation ThresholdedRelu whose alpha ONNX reads as 1.0 and ONNX Runtime as 0.0; rnnkit reads the parameters both read alike"),
            ("refused/rnn_leakyrelu_default_alpha.onnx", "node #0 → Y (RNN): has the activation LeakyRelu whose alpha ONNX reads as 0.01 and ONNX Runtime as 0.0; rnnkit reads the parameters both read alike"),
            ("refused/gru_clip_zero.onnx", "node #0 → Y (GRU): has clip 0.0; a clip is a positive threshold"),
            ("refused/lstm_opset1_output_sequence.onnx", "node #0 → Y (LSTM): has output_sequence, an attribute of opset 1 that later opsets dropped; rnnkit reads the recurrent operators of opset 7 and later"),
        ]
        for (name, message) in cases {
            let path = folder + "/" + name
            XCTAssertThrowsError(try LoadedModel(contentsOf: path), name) { error in
                XCTAssertEqual("\(error)", "\(path): \(message)")
            }
            let result = try rnnkit(["inspect", path])
            XCTAssertEqual(result.status, 2, name)
            XCTAssertEqual(result.stderr, "rnnkit: error: \(path): \(message)\n")
        }
    }

    /// tf2onnx's patterns are read by what they compute and only so: a bidirectional node's
    /// directions sliced apart are read only when concatenated back forward first on the
    /// features, a Slice of steps only as the last step (`[-1:]`), the merge of batch and
    /// time only when split back in the same order; each other use is refused naming the node.
    func testTf2onnxPatternsOutsideTheirRulesAreRefused() throws {
        func edited(_ name: String, _ edit: (inout Onnx_GraphProto) throws -> Void) throws -> String {
            var proto = try Onnx_ModelProto(serializedBytes: Data(contentsOf: URL(fileURLWithPath: folder + "/" + name)))
            try edit(&proto.graph)
            return try refusal([UInt8](proto.serializedData())).error
        }
        func ints(_ name: String, _ values: [Int64]) -> Onnx_TensorProto {
            var t = Onnx_TensorProto()
            t.name = name
            t.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
            t.dims = [Int64(values.count)]
            t.int64Data = values
            return t
        }
        // Backward direction first.
        XCTAssertEqual(try edited("tf2onnx_tfkeras_bilstm_concat.onnx") { graph in
            let i = try XCTUnwrap(graph.node.firstIndex { $0.opType == "Concat" && $0.name.hasSuffix("bidirectional/concat") })
            graph.node[i].input.reverse()
        }, "M: node sequential_2/bidirectional/concat (Concat): concatenates data in a way rnnkit does not follow")
        // The directions concatenated on the time axis.
        XCTAssertEqual(try edited("tf2onnx_tfkeras_bilstm_concat.onnx") { graph in
            let i = try XCTUnwrap(graph.node.firstIndex { $0.opType == "Concat" && $0.name.hasSuffix("bidirectional/concat") })
            var axis = Onnx_AttributeProto()
            axis.name = "axis"
            axis.type = .int
            axis.i = 0
            graph.node[i].attribute = [axis]
        }, "M: node sequential_2/bidirectional/concat (Concat): concatenates directions other than both of one recurrent node on the features, forward first")
        // The forward direction alone as the output.
        XCTAssertEqual(try edited("tf2onnx_tfkeras_bilstm_concat.onnx") { graph in
            let i = try XCTUnwrap(graph.node.firstIndex { $0.opType == "Concat" && $0.name.hasSuffix("bidirectional/concat") })
            graph.node[i].opType = "Identity"
            graph.node[i].input = [graph.node[i].input[0]]
            graph.node[i].attribute = []
        }, "M: node sequential_2/dense_2/Tensordot/MatMul (MatMul): reads direction 0 of 2 of a recurrent node's output alone; rnnkit reads the directions side by side on the features, forward first")
        // Steps other than the last.
        XCTAssertEqual(try edited("tf2onnx_tfkeras_gru_last_dense_softmax.onnx") { graph in
            let i = try XCTUnwrap(graph.node.firstIndex { $0.opType == "Slice" && $0.name.hasSuffix("strided_slice_2") })
            graph.initializer.append(ints("minus_two", [-2]))
            graph.node[i].input[1] = "minus_two"
        }, "M: node sequential_1/gru/PartitionedCall/strided_slice_2 (Slice): slices steps -2..<2147483647 of the sequence; rnnkit reads the last step ([-1:]) only")
        // Rows of [batch·time, features] split back as [time, batch, …].
        XCTAssertEqual(try edited("tf2onnx_tfkeras_lstm_seq_dense.onnx") { graph in
            let i = try XCTUnwrap(graph.node.firstIndex { $0.opType == "Reshape" && $0.name.hasSuffix("dense/Tensordot") })
            graph.initializer.append(ints("time_batch", [7, -1, 2]))
            graph.node[i].input[1] = "time_batch"
        }, "M: node sequential/dense/Tensordot (Reshape): reshapes axes [batch·time, features 2] to [7, -1, 2]; rnnkit follows reshapes that merge [directions, hidden], merge [batch, time] and split them back, or add and remove size-1 axes")
    }

    /// What the fuzz target does (FuzzEntry.onnx), over every committed ONNX file cut short at
    /// many lengths and with bytes changed: each one read or refused, never a trap.
    func testCutAndChangedModelsReadOrRefuse() throws {
        var files: [String] = []
        for sub in ["", "refused"] {
            let path = sub.isEmpty ? folder : folder + "/" + sub
            files += try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".onnx") }.sorted()
                .map { path + "/" + $0 }
        }
        XCTAssertGreaterThan(files.count, 40)
        var generator = SplitMix(seed: 20261207)
        var refused = 0, read = 0
        for path in files {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            var inputs: [[UInt8]] = [bytes]
            for cut in stride(from: 1, to: bytes.count, by: max(bytes.count / 24, 1)) { inputs.append(Array(bytes.prefix(cut))) }
            for _ in 0..<24 {
                var changed = bytes
                changed[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
                inputs.append(changed)
            }
            for input in inputs {
                if FuzzEntry.onnx(input) == nil { read += 1 } else { refused += 1 }
            }
        }
        XCTAssertGreaterThan(read, 40)
        XCTAssertGreaterThan(refused, 1000)
    }

    private struct SplitMix {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    // MARK: - Hostile protobufs

    /// A `ModelProto` whose header the form decision accepts (`ir_version`, then a `graph`
    /// field of `graph.count` bytes that ends within the file) around `graph`.
    private func model(graph: [UInt8]) -> [UInt8] {
        [0x08, 0x08] + [0x3A] + varint(UInt64(graph.count)) + graph
    }

    private func varint(_ value: UInt64) -> [UInt8] {
        var v = value, bytes: [UInt8] = []
        repeat {
            bytes.append(UInt8(v & 0x7F) | (v >= 0x80 ? 0x80 : 0))
            v >>= 7
        } while v > 0
        return bytes
    }

    private func refusal(_ bytes: [UInt8], _ test: String = #function) throws -> (error: String, cli: CommandResult) {
        let url = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("rnnkit-onnx-\(UUID().uuidString).onnx")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        var message = ""
        XCTAssertThrowsError(try LoadedModel(contentsOf: url.path)) { message = "\($0)".replacingOccurrences(of: url.path, with: "M") }
        let cli = try rnnkit(["inspect", url.path])
        XCTAssertEqual(cli.status, 2, test)
        XCTAssertEqual(cli.stderr.split(separator: "\n").count, 1, cli.stderr)
        return (message, cli)
    }

    func testHostileProtobufsAreOneLineRefusals() throws {
        // A node field whose length runs past the end of the graph.
        XCTAssertEqual(try refusal(model(graph: [0x0A, 0x64, 0x01, 0x02])).error,
                       "M: is not a readable ONNX model: the protobuf data ends inside a field (truncated, or a length past the end)")
        // A length of 2^62.
        XCTAssertEqual(try refusal(model(graph: [0x0A] + varint(1 << 62))).error,
                       "M: is not a readable ONNX model: malformed protobuf data")
        // Graphs nested 40 deep: node (1) → attribute (5) → g (6) → node …
        var nested: [UInt8] = []
        for _ in 0..<40 {
            let attribute = [0x32] + varint(UInt64(nested.count)) + nested   // AttributeProto.g
            let node = [0x2A] + varint(UInt64(attribute.count)) + attribute   // NodeProto.attribute
            nested = [0x0A] + varint(UInt64(node.count)) + node               // GraphProto.node
        }
        XCTAssertEqual(try refusal(model(graph: nested)).error, "M: is not a readable ONNX model: messages nest deeper than 32")
    }

    /// Tensors are checked before their values are read: external data, values in two places,
    /// counts that do not fit the dims, dims whose product overflows.
    func testHostileTensors() throws {
        func file(_ edit: (inout Onnx_TensorProto) -> Void) throws -> String {
            var proto = try Onnx_ModelProto(serializedBytes: Data(contentsOf: URL(fileURLWithPath: folder + "/lstm.onnx")))
            let index = try XCTUnwrap(proto.graph.initializer.firstIndex { $0.name == "W" })
            edit(&proto.graph.initializer[index])
            return try refusal([UInt8](proto.serializedData())).error
        }
        XCTAssertEqual(try file { t in
            t.dataLocation = .external
            var entry = Onnx_StringStringEntryProto()
            entry.key = "location"
            entry.value = "../../etc/passwd"
            t.externalData = [entry]
            t.rawData = Data()
        }, "M: initializer W: keeps its values in ../../etc/passwd, which is not a plain path inside the model's folder (absolute, empty, . or .. components); refused")
        XCTAssertEqual(try file { t in
            t.dataLocation = .external
            var entry = Onnx_StringStringEntryProto()
            entry.key = "location"
            entry.value = "lstm.onnx"
            t.externalData = [entry]
        }, "M: initializer W: keeps its values in external data and in the model too; refused")
        XCTAssertEqual(try file { t in t.floatData = [1, 2] },
                       "M: initializer W: holds its values both in raw_data and in a typed field; refused")
        XCTAssertEqual(try file { t in t.rawData = Data(count: 8) },
                       "M: initializer W: dims [1, 12, 2] hold 24 values, the tensor stores 2")
        XCTAssertEqual(try file { t in t.dims = [1 << 40, 1 << 40, 1 << 40] },
                       "M: initializer W: dims [1099511627776, 1099511627776, 1099511627776] have a negative dimension or more elements than Int.max")
        XCTAssertEqual(try file { t in t.dims = [-1, 12, 2] },
                       "M: initializer W: dims [-1, 12, 2] have a negative dimension or more elements than Int.max")
    }

    /// Dims and shape values the file gives are bounded before anything multiplies, adds or
    /// strides over them: W computed by a Transpose of a tensor of no elements with dims of
    /// 2^62, or by a Reshape to `[2^40, 2^40, -1]`, is refused, not an arithmetic trap.
    func testFileGivenDimsAreBoundedBeforeArithmetic() throws {
        func file(_ node: Onnx_NodeProto, _ edit: (inout Onnx_TensorProto) -> Void, extra: [Onnx_TensorProto] = []) throws -> String {
            var proto = try Onnx_ModelProto(serializedBytes: Data(contentsOf: URL(fileURLWithPath: folder + "/lstm.onnx")))
            let index = try XCTUnwrap(proto.graph.initializer.firstIndex { $0.name == "W" })
            proto.graph.initializer[index].name = "W0"
            edit(&proto.graph.initializer[index])
            proto.graph.initializer += extra
            proto.graph.node.insert(node, at: 0)
            return try refusal([UInt8](proto.serializedData())).error
        }
        var transpose = Onnx_NodeProto()
        transpose.opType = "Transpose"
        transpose.name = "t"
        transpose.input = ["W0"]
        transpose.output = ["W"]
        XCTAssertEqual(try file(transpose) { t in t.dims = [1 << 62, 0, 1 << 62]; t.rawData = Data() },
                       "M: initializer W0: dims [4611686018427387904, 0, 4611686018427387904] hold no values but multiply past 67108864 without their zeros; refused")
        var reshape = Onnx_NodeProto()
        reshape.opType = "Reshape"
        reshape.name = "r"
        reshape.input = ["W0", "S"]
        reshape.output = ["W"]
        var target = Onnx_TensorProto()
        target.name = "S"
        target.dataType = 7
        target.dims = [3]
        target.int64Data = [1 << 40, 1 << 40, -1]
        XCTAssertTrue(try file(reshape, { _ in }, extra: [target]).hasSuffix("reshapes [1, 12, 2] to [1099511627776, 1099511627776, -1]"))
        target.int64Data = [1 << 40, 0, 1 << 40]
        var allowZero = Onnx_AttributeProto()
        allowZero.name = "allowzero"
        allowZero.type = .int
        allowZero.i = 1
        reshape.attribute = [allowZero]
        XCTAssertTrue(try file(reshape, { t in t.dims = [0, 12, 2]; t.rawData = Data() }, extra: [target])
            .hasSuffix("reshapes [0, 12, 2] to [1099511627776, 0, 1099511627776]"))
    }
}
