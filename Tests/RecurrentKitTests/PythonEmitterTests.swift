import Foundation
import HDF5
import XCTest
import TestSupport
import TextSafety
@testable import RecurrentKit

/// `PythonEmitter` declares every module under the config's name with the right torch class,
/// chooses packed or step-loop runs by the config's options, and refuses what torch modules
/// cannot express. The emitted source is read with Python's own parser (`ast`, stdlib only)
/// and compared by structure: the submodules `Model.__init__` declares (class, arguments),
/// the statements of `forward`, the module's functions and `load`. For the committed models
/// the expectations come from the torch modules `fixtures/pytorch/generate.py` built them
/// with, read from its source, not from the code under test. (Numbers against real torch:
/// `fixtures/convert/check_frameworks.py`.)
final class PythonEmitterTests: XCTestCase {
    // MARK: - Reading Python

    /// A JSON value as Python's `ast.literal_eval` gave it.
    enum PythonValue: Decodable, Equatable, CustomStringConvertible {
        case int(Int), double(Double), bool(Bool), string(String), none

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() { self = .none }
            else if let value = try? container.decode(Bool.self) { self = .bool(value) }
            else if let value = try? container.decode(Int.self) { self = .int(value) }
            else if let value = try? container.decode(Double.self) { self = .double(value) }
            else { self = .string(try container.decode(String.self)) }
        }

        var description: String {
            switch self {
            case .int(let value): return "\(value)"
            case .double(let value): return "\(value)"
            case .bool(let value): return value ? "True" : "False"
            case .string(let value): return value.debugDescription
            case .none: return "None"
            }
        }
    }

    /// `self.<attr> = nn.<Class>(args, kwargs)` in an `__init__`.
    struct Declaration: Decodable, Equatable, CustomStringConvertible {
        var attr: String
        var `class`: String
        var args: [PythonValue]
        var kwargs: [String: PythonValue]

        var description: String {
            "self.\(attr) = nn.\(`class`)(" + (args.map(\.description)
                + kwargs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }).joined(separator: ", ") + ")"
        }

        /// With PyTorch's documented defaults filled in, so that `nn.LSTM(3, 5)` and
        /// `nn.LSTM(3, 5, num_layers=1, bias=True)` compare equal.
        var withTorchDefaults: Declaration {
            var out = self
            out.kwargs = (PythonEmitterTests.torchDefaults[`class`] ?? [:]).merging(kwargs) { $1 }
            return out
        }
    }

    struct Method: Decodable {
        var args: [String]
        var defaults: [String]
        /// Each statement as `ast.unparse` writes it (docstrings and comments dropped).
        var body: [String]
    }

    struct PythonClass: Decodable {
        var bases: [String]
        var methods: [String: Method]
        var declarations: [Declaration]
    }

    /// An emitted module as Python parses it.
    struct PythonModule: Decodable {
        var imports: [String]
        /// Top-level functions and their statements.
        var functions: [String: [String]]
        /// Top-level assignments: a string literal's value, any other value's source.
        var assignments: [String: String]
        var classes: [String: PythonClass]
    }

    /// One model of `generate.py`: what `layout()` lists, in application order.
    struct LayoutEntry: Decodable {
        var name: String?
        var readout: String?
        var `class`: String?
        var attr: String?
        var kwargs: [String: PythonValue]?
    }

    struct GeneratorCase: Decodable {
        var declarations: [Declaration]
        var layout: [LayoutEntry]
        var prefix: String
    }

    /// torch.nn's constructor defaults (torch 2.x documentation) for the modules with parameters.
    static let torchDefaults: [String: [String: PythonValue]] = {
        let recurrent: [String: PythonValue] = ["num_layers": .int(1), "bias": .bool(true), "batch_first": .bool(false),
                                                "dropout": .int(0), "bidirectional": .bool(false)]
        return [
            "Embedding": ["padding_idx": .none],
            "Linear": ["bias": .bool(true)],
            "RNN": recurrent.merging(["nonlinearity": .string("tanh")]) { $1 },
            "LSTM": recurrent.merging(["proj_size": .int(0)]) { $1 },
            "GRU": recurrent,
        ]
    }()

    /// Reads Python source with `ast` (stdlib only): `mode` "emitted" describes an emitted
    /// module (`PythonModule`), "generator" the whole-model cases of `generate.py`.
    static let structureScript = #"""
import ast, json, sys

# The generator's module-level constants (ALPHABET = "..."), which case arguments may use.
CONSTANTS = {}

def literal(node, env=None):
    """A constant expression's value: literals and arithmetic on them, len(), names from env
    and the generator's module-level constants."""
    if env:
        node = Bind(env).visit(node)
    return eval(compile(ast.fix_missing_locations(ast.Expression(node)), "<expr>", "eval"),
                {"__builtins__": {"len": len}}, dict(CONSTANTS))

class Bind(ast.NodeTransformer):
    def __init__(self, env):
        self.env = env
    def visit_Name(self, node):
        return self.env.get(node.id, node)

def declaration(target, value, env=None):
    """self.<attr> = nn.<Class>(args) as {attr, class, args, kwargs}, or None."""
    if env and isinstance(value, ast.Name) and value.id in env:
        value = env[value.id]
    if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self"):
        return None
    if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)
            and isinstance(value.func.value, ast.Name) and value.func.value.id == "nn"):
        return None
    return {"attr": target.attr, "class": value.func.attr,
            "args": [literal(a, env) for a in value.args],
            "kwargs": {k.arg: literal(k.value, env) for k in value.keywords}}

def emitted(source):
    tree = ast.parse(source)
    out = {"imports": [], "functions": {}, "assignments": {}, "classes": {}}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out["imports"].append(ast.unparse(node))
        elif isinstance(node, ast.FunctionDef):
            out["functions"][node.name] = [ast.unparse(s) for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        elif isinstance(node, ast.Assign):
            # A string literal as its value (PREFIX); anything else (a tokenizer's tables) as source.
            value = node.value.value if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str) else None
            out["assignments"][ast.unparse(node.targets[0])] = value if value is not None else ast.unparse(node.value)
        elif isinstance(node, ast.ClassDef):
            methods = {}
            declarations = []
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    body = [s for s in item.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
                    methods[item.name] = {"args": [a.arg for a in item.args.args],
                                          "defaults": [ast.unparse(d) for d in item.args.defaults],
                                          "body": [ast.unparse(s) for s in body]}
                    if item.name == "__init__":
                        for s in body:
                            if isinstance(s, ast.Assign):
                                d = declaration(s.targets[0], s.value)
                                if d: declarations.append(d)
            out["classes"][node.name] = {"bases": [ast.unparse(b) for b in node.bases], "methods": methods,
                                         "declarations": declarations}
    return out

def generator(source):
    """The whole-model cases of fixtures/pytorch/generate.py: each model class's torch
    submodules with the case's arguments bound, its layout() and the case's prefix."""
    tree = ast.parse(source)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    for n in tree.body:
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
            try:
                CONSTANTS[n.targets[0].id] = literal(n.value)
            except Exception:
                pass  # not a constant (a function call, a class): no case argument uses it
    cases = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "whole"):
            continue
        # Cases made through a helper (the lesson's classifiers) name themselves at run time.
        if not isinstance(node.args[0], ast.Constant):
            continue
        name = node.args[0].value
        build = node.args[1].body
        cls = classes[build.func.id]
        init = next(i for i in cls.body if isinstance(i, ast.FunctionDef) and i.name == "__init__")
        params = [a.arg for a in init.args.args][1:]
        env = dict(zip(params, build.args))
        declarations, types = [], {}
        for s in init.body:
            if isinstance(s, ast.Assign):
                d = declaration(s.targets[0], s.value, env)
                if d:
                    declarations.append(d)
                    types[d["attr"]] = d
        layout_fn = next(i for i in cls.body if isinstance(i, ast.FunctionDef) and i.name == "layout")
        entries = []
        for element in layout_fn.body[-1].value.elts:
            key, value = element.elts
            label = key.value
            if isinstance(value, ast.Constant):
                entries.append({"name": label, "readout": value.value})
            else:
                d = types[value.attr]
                entries.append({"name": label, "class": d["class"], "attr": value.attr, "kwargs": d["kwargs"]})
        prefix = next((literal(k.value) for k in node.keywords if k.arg == "prefix"), "")
        cases[name] = {"declarations": declarations, "layout": entries, "prefix": prefix}
    return cases

mode = sys.argv[1]
text = sys.stdin.buffer.read().decode("utf-8")
def lessons(source):
    """The cases made through generate.py's lesson() helper, by name."""
    return sorted(node.args[0].value for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "lesson"
                  and node.args and isinstance(node.args[0], ast.Constant))

if mode == "emitted":
    print(json.dumps(emitted(text), sort_keys=True))
elif mode == "lessons":
    print(json.dumps(lessons(text)))
else:
    print(json.dumps(generator(text), sort_keys=True))
"""#

    private func python(_ mode: String, _ source: String) throws -> Data {
        let result = try python3(["-c", Self.structureScript, mode], input: Data(source.utf8))
        guard result.status == 0 else {
            XCTFail("python3 could not read the source: \(result.stderr)")
            throw CocoaError(.fileReadCorruptFile)
        }
        return Data(result.stdout.utf8)
    }

    /// The emitted module as Python's parser reads it (so it also parses as Python).
    private func parsed(_ source: String) throws -> PythonModule {
        try JSONDecoder().decode(PythonModule.self, from: python("emitted", source))
    }

    private func model(_ module: PythonModule) throws -> PythonClass {
        let model = try XCTUnwrap(module.classes["Model"], "no class Model")
        XCTAssertEqual(module.classes.keys.sorted(), ["Model"])
        XCTAssertEqual(model.bases, ["nn.Module"])
        XCTAssertEqual(model.methods.keys.sorted(), ["__init__", "forward"])
        XCTAssertEqual(model.methods["__init__"]?.body.first, "super().__init__()")
        XCTAssertEqual(model.methods["__init__"]?.body.count, model.declarations.count + 1, "only submodules in __init__")
        XCTAssertEqual(model.methods["forward"]?.args, ["self", "x", "lengths"])
        XCTAssertEqual(model.methods["forward"]?.defaults, ["None"])
        XCTAssertEqual(model.methods["forward"]?.body.last, "return x")
        return model
    }

    /// `load(path)` reads the container its path's extension names (`.pt`/`.pth` with
    /// `torch.load(..., weights_only=True)`, `.safetensors`, `.h5`/`.hdf5`; any other name as
    /// the container written), every tensor as float32 under its key less the prefix, and loads
    /// it strictly into a fresh `Model` in eval mode. h5py and safetensors are imported inside
    /// their readers only.
    private func assertLoadsStrictly(_ module: PythonModule, prefix: String, otherNames: String = "state = read_hdf5(path)",
                                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(module.functions["load"], [
            "name = str(path).lower()",
            """
            if name.endswith(('.pt', '.pth')):
                state = torch.load(path, weights_only=True, map_location='cpu')
            elif name.endswith('.safetensors'):
                state = read_safetensors(path)
            elif name.endswith(('.h5', '.hdf5')):
                state = read_hdf5(path)
            else:
                \(otherNames)
            """,
            "state = {\(prefix.isEmpty ? "key" : "key.removeprefix(PREFIX)"): value.float() for key, value in state.items()}",
            "model = Model()",
            "model.load_state_dict(state, strict=True)",
            "return model.eval()",
        ], file: file, line: line)
        XCTAssertEqual(module.functions["read_safetensors"], ["from safetensors.torch import load_file", "return load_file(path)"],
                       file: file, line: line)
        let hdf5 = module.functions["read_hdf5"] ?? []
        XCTAssertEqual(hdf5.first, "import h5py", file: file, line: line)
        XCTAssertTrue(hdf5.contains { $0.contains("state[name.replace('/', '.')] = torch.from_numpy(value[()].astype('float32'))") },
                      "\(hdf5)", file: file, line: line)
        XCTAssertEqual(hdf5.last, "return state", file: file, line: line)
        XCTAssertFalse(module.imports.contains { $0.contains("h5py") || $0.contains("safetensors") || $0.contains("numpy") },
                       "\(module.imports)", file: file, line: line)
        XCTAssertEqual(module.assignments["PREFIX"], prefix.isEmpty ? nil : prefix, file: file, line: line)
    }

    private func committedConfig(_ name: String) throws -> String {
        try XCTUnwrap(try HDF5File.open(fixture("pytorch/\(name).h5")).root.attribute("model_config")?.stringValue, name)
    }

    // MARK: - Committed models

    /// The models generate.py built with torch, each with its torch submodules and layout.
    private func generatorCases() throws -> [String: GeneratorCase] {
        let source = try String(contentsOfFile: fixture("pytorch/generate.py"), encoding: .utf8)
        return try JSONDecoder().decode([String: GeneratorCase].self, from: python("generator", source))
    }

    /// The cases generate.py makes through its `lesson()` helper (the lesson's classifiers:
    /// `getattr(nn, kind)` modules this reading of the source does not follow). Their emitted
    /// modules are run in real torch by fixtures/convert/check_emitter.py.
    private func lessonCases() throws -> [String] {
        let source = try String(contentsOfFile: fixture("pytorch/generate.py"), encoding: .utf8)
        return try JSONDecoder().decode([String].self, from: python("lessons", source))
    }

    /// What `forward` must do for a layout of generate.py, statement by statement: the
    /// spec's expression for each readout (spec/pytorch-layout.md), the torch function for
    /// each activation module, nothing for Dropout, and PyTorch's packed run for each
    /// recurrent module (these are version-1 models: PyTorch's own behaviour).
    private func expectedForward(_ layout: [LayoutEntry]) -> (body: [String], functions: Set<String>) {
        let masked = ["mean": "mean_over_valid_steps", "max": "max_over_valid_steps", "last_step": "last_valid_step"]
        var body: [String] = []
        var functions: Set<String> = ["load", "read_hdf5", "read_safetensors", "run_packed"]
        if let readout = layout.compactMap(\.readout).first(where: { masked[$0] != nil }) {
            body.append("mask = valid_steps(x, lengths)")
            functions.formUnion(["valid_steps", masked[readout]!])
        }
        var bidirectional = false
        for (index, entry) in layout.enumerated() {
            if let readout = entry.readout {
                switch readout {
                case "last_hidden": body.append("x = h_n[-1]")
                case "last_hidden_all_directions":
                    body.append(bidirectional ? "x = torch.cat([h_n[-2], h_n[-1]], dim=1)" : "x = h_n[-1]")
                default: body.append("x = \(masked[readout]!)(x, mask)")
                }
                continue
            }
            let attr = entry.attr ?? "?"
            switch entry.class ?? "" {
            case "Embedding", "Linear": body.append("x = self.\(attr)(x)")
            case "RNN", "LSTM", "GRU":
                let readsState = layout[(index + 1)...].contains { $0.readout?.hasPrefix("last_hidden") == true }
                body.append("x, \(readsState ? "h_n" : "_") = run_packed(self.\(attr), x, lengths)")
                bidirectional = entry.kwargs?["bidirectional"] == .bool(true)
            case "ReLU": body.append("x = torch.relu(x)")
            case "Tanh": body.append("x = torch.tanh(x)")
            case "Sigmoid": body.append("x = torch.sigmoid(x)")
            case "Softmax": body.append("x = torch.softmax(x, dim=-1)")
            case "Dropout", "Identity": break
            case let other: body.append("unexpected module \(other)")
            }
        }
        return (body + ["return x"], functions)
    }

    /// Every committed PyTorch model with a `model_config` is a generate.py model, and the
    /// emitted module declares exactly the torch submodules generate.py built it with
    /// (same names, classes and arguments, defaults filled in), runs them in the layout's
    /// order with the spec's readouts, defines only the functions it calls, and loads the
    /// file strictly under its prefix.
    func testCommittedModelsMatchTheirTorchModules() throws {
        let cases = try generatorCases()
        let folder = URL(fileURLWithPath: fixture("pytorch"))
        let withConfig = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".h5") && !$0.hasSuffix(".fixture.h5") }
            .filter { try HDF5File.open(folder.appendingPathComponent($0).path).root.attribute("model_config") != nil }
            .map { String($0.dropLast(3)) }
        let lessons = try lessonCases()
        XCTAssertEqual(Set(withConfig), Set(cases.keys).union(lessons), "fixtures with a model_config and generate.py's whole models")
        XCTAssertTrue(Set(cases.keys).isDisjoint(with: lessons))
        XCTAssertGreaterThanOrEqual(cases.count, 6)
        XCTAssertGreaterThanOrEqual(lessons.count, 7)
        for name in lessons {
            // The lesson's classifiers: Embedding -> recurrent module -> readout -> Linear.
            let module = try parsed(try PythonEmitter.source(modelConfig: committedConfig(name), weightsFile: "\(name).h5"))
            XCTAssertEqual(try model(module).declarations.map(\.class), ["Embedding", name.hasPrefix("lesson_rnn") ? "RNN" : "LSTM", "Linear"], name)
        }
        for (name, expected) in cases.sorted(by: { $0.key < $1.key }) {
            let source = try PythonEmitter.source(modelConfig: committedConfig(name), weightsFile: "\(name).h5")
            XCTAssertTrue(source.hasPrefix("# Generated by rnnkit from \(name).h5.\n"), name)
            let module = try parsed(source)
            let model = try model(module)
            let parameterised = expected.declarations.filter { Self.torchDefaults[$0.class] != nil }
            XCTAssertEqual(model.declarations.map(\.withTorchDefaults), parameterised.map(\.withTorchDefaults), name)
            let forward = expectedForward(expected.layout)
            XCTAssertEqual(model.methods["forward"]?.body, forward.body, name)
            XCTAssertEqual(Set(module.functions.keys), forward.functions, name)
            XCTAssertEqual(module.imports, ["import torch", "from torch import nn",
                                            "from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence"], name)
            assertLoadsStrictly(module, prefix: expected.prefix)
        }
    }

    // MARK: - Version 2

    /// Keras options, masks from data and every merge mode run through `run_recurrent` with
    /// their options: the module's own forward over right padding, the step loop otherwise
    /// (both are emitted, with the cells of the kinds used).
    func testVersion2OptionsRunFusedWhereTheMaskAllows() throws {
        let json = """
            {"format": "recurrentkit.pytorch", "version": 2, "modules": [
              {"type": "Embedding", "name": "embedding", "num_embeddings": 12, "embedding_dim": 4, "mask_zero": true},
              {"type": "LSTM", "name": "lstm", "input_size": 4, "hidden_size": 3, "masked_output": "carry",
               "go_backwards": true},
              {"type": "GRU", "name": "bidirectional", "input_size": 3, "hidden_size": 3, "bidirectional": true,
               "merge_mode": "ave"},
              {"type": "RNN", "name": "simple_rnn", "input_size": 3, "hidden_size": 2, "nonlinearity": "relu",
               "bidirectional": true, "merge_mode": "mul", "return_sequences": false, "masked_output": "carry"},
              {"type": "Linear", "name": "dense", "in_features": 2, "out_features": 2, "bias": false},
              {"type": "GELU", "approximate": "tanh"}
            ]}
            """
        let source = try PythonEmitter.source(modelConfig: json, weightsFile: "converted.h5")
        let module = try parsed(source)
        let model = try model(module)
        XCTAssertEqual(model.declarations.map(\.description), [
            "self.embedding = nn.Embedding(12, 4)",
            "self.lstm = nn.LSTM(4, 3, batch_first=True)",
            "self.bidirectional = nn.GRU(3, 3, batch_first=True, bidirectional=True)",
            "self.simple_rnn = nn.RNN(3, 2, batch_first=True, bidirectional=True, nonlinearity=\"relu\")",
            "self.dense = nn.Linear(2, 2, bias=False)",
        ])
        XCTAssertEqual(model.methods["forward"]?.body, [
            "mask = valid_steps(x, lengths)",
            "mask = mask & (x != 0)",
            "x = self.embedding(x)",
            "x, _ = run_recurrent(self.lstm, x, mask, masked_output='carry', go_backwards=True)",
            "x, _ = run_recurrent(self.bidirectional, x, mask, merge='ave')",
            "x, _ = run_recurrent(self.simple_rnn, x, mask, masked_output='carry', merge='mul', return_sequences=False)",
            "x = self.dense(x)",
            "x = F.gelu(x, approximate='tanh')",
            "return x",
        ])
        XCTAssertEqual(Set(module.functions.keys), ["valid_steps", "run_packed", "run_recurrent", "run_fused", "run_masked",
                                                     "run_direction", "merge_directions", "cell_step", "lstm_cell", "gru_cell",
                                                     "rnn_cell", "load", "read_hdf5", "read_safetensors"])
        // The mask decides at run time: a hole (a masked step before a valid one) takes the loop.
        XCTAssertEqual(module.functions["run_recurrent"], [
            "if bool((mask[:, 1:] & ~mask[:, :-1]).any()):\n"
                + "    return run_masked(rnn, x, mask, masked_output, go_backwards, merge, return_sequences)",
            "return run_fused(rnn, x, mask.sum(dim=1), masked_output, go_backwards, merge, return_sequences)",
        ])
        XCTAssertTrue(source.contains("""
                    # Step loop: a masked step comes before a valid one (a hole in the mask, such as a 0 token
                    # or a Masking row mid-sequence); packed sequences can only end early.
                    return run_masked(
            """), "the loop says why it runs")
        // run_fused runs the module's own forward (packed) and applies the options to its results.
        let fused = module.functions["run_fused"] ?? []
        XCTAssertTrue(fused.contains("output, h_n = run_packed(rnn, x, None if full else lengths.clamp(min=1))"), "\(fused)")
        XCTAssertEqual(fused.last, "return (merge_directions(halves, merge), h_n)")
        XCTAssertFalse(fused.contains { $0.contains("run_masked") || $0.contains("cell_step") }, "no step loop in run_fused")
        // cell_step dispatches to the three cells; no LSTM has a projection.
        XCTAssertEqual(module.functions["cell_step"], [
            "if isinstance(rnn, nn.LSTM):\n    return lstm_cell(w, x_t, h, c)",
            "if isinstance(rnn, nn.GRU):\n    return (gru_cell(w, x_t, h), c)",
            "return (rnn_cell(rnn, w, x_t, h), c)",
        ])
        XCTAssertFalse(module.functions["lstm_cell"]?.contains { $0.contains("weight_hr") } ?? true)
        XCTAssertEqual(module.imports, ["import torch", "from torch import nn", "from torch.nn import functional as F",
                                        "from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence"])
        assertLoadsStrictly(module, prefix: "")
    }

    /// Keras options over PyTorch lengths alone (no mask from the data) run fused too: the
    /// mask `valid_steps` builds from lengths is right padding.
    func testKerasOptionsOverLengthsRunFused() throws {
        let json = """
            {"format": "recurrentkit.pytorch", "version": 2, "modules": [
              {"type": "GRU", "name": "gru", "input_size": 4, "hidden_size": 3, "num_layers": 2, "masked_output": "carry"},
              {"type": "LSTM", "name": "lstm", "input_size": 3, "hidden_size": 3, "return_sequences": false},
              {"type": "Linear", "name": "dense", "in_features": 3, "out_features": 2}
            ]}
            """
        let module = try parsed(try PythonEmitter.source(modelConfig: json, weightsFile: "m.h5"))
        let model = try model(module)
        XCTAssertEqual(model.declarations.map(\.description), [
            "self.gru = nn.GRU(4, 3, batch_first=True, num_layers=2)",
            "self.lstm = nn.LSTM(3, 3, batch_first=True)",
            "self.dense = nn.Linear(3, 2)",
        ])
        XCTAssertEqual(model.methods["forward"]?.body, [
            "mask = valid_steps(x, lengths)",
            "x, _ = run_recurrent(self.gru, x, mask, masked_output='carry')",
            "x, _ = run_recurrent(self.lstm, x, mask, return_sequences=False)",
            "x = self.dense(x)",
            "return x",
        ])
    }

    /// go_backwards on a stacked or bidirectional module has no torch equivalent: the step
    /// loop runs whatever the mask, and a comment at the call says why. One layer, one
    /// direction runs through run_recurrent.
    func testGoBackwardsWithoutTorchEquivalentRunsTheLoop() throws {
        let json = """
            {"format": "recurrentkit.pytorch", "version": 2, "modules": [
              {"type": "LSTM", "name": "stacked", "input_size": 4, "hidden_size": 3, "num_layers": 2, "go_backwards": true},
              {"type": "GRU", "name": "both", "input_size": 3, "hidden_size": 3, "bidirectional": true, "go_backwards": true},
              {"type": "RNN", "name": "single", "input_size": 6, "hidden_size": 2, "go_backwards": true},
              {"type": "Readout", "mode": "last_hidden"}
            ]}
            """
        let source = try PythonEmitter.source(modelConfig: json, weightsFile: "m.h5")
        let module = try parsed(source)
        XCTAssertEqual(try model(module).methods["forward"]?.body, [
            "mask = valid_steps(x, lengths)",
            "x, _ = run_masked(self.stacked, x, mask, go_backwards=True)",
            "x, _ = run_masked(self.both, x, mask, go_backwards=True)",
            "x, h_n = run_recurrent(self.single, x, mask, go_backwards=True)",
            "x = h_n[-1]",
            "return x",
        ])
        XCTAssertTrue(source.contains("""
                    # Step loop: go_backwards with num_layers 2 runs every layer over its input reversed, each fed the previous layer's outputs in processing order; nn.LSTM has no such mode.
                    x, _ = run_masked(self.stacked
            """), source)
        XCTAssertTrue(source.contains("""
                    # Step loop: go_backwards on a bidirectional module runs both directions over the reversed sequence; nn.GRU has no such mode.
                    x, _ = run_masked(self.both
            """), source)
    }

    /// The header names the container written and how `load` reads it; any name `load` does
    /// not know by its extension is read as that container.
    func testHeaderAndLoadFollowTheContainer() throws {
        let json = try committedConfig("clf_embed_lstm_last_hidden")
        let cases: [(file: String, description: String, call: String, otherNames: String)] = [
            ("model.pt", "a torch.save state_dict (a zip)", "torch.load(path, weights_only=True, map_location=\"cpu\")",
             "state = torch.load(path, weights_only=True, map_location='cpu')"),
            ("model.PTH", "a torch.save state_dict (a zip)", "torch.load(path, weights_only=True, map_location=\"cpu\")",
             "state = torch.load(path, weights_only=True, map_location='cpu')"),
            ("model.safetensors", "a safetensors file", "safetensors.torch.load_file(path)", "state = read_safetensors(path)"),
            ("model.h5", "HDF5, one dataset per key", "h5py", "state = read_hdf5(path)"),
            ("model.hdf5", "HDF5, one dataset per key", "h5py", "state = read_hdf5(path)"),
            ("model.weights", "HDF5, one dataset per key", "h5py", "state = read_hdf5(path)"),
        ]
        for (file, description, call, otherNames) in cases {
            let source = try PythonEmitter.source(modelConfig: json, weightsFile: file)
            XCTAssertTrue(source.contains("file's keys. The file is \(description). Usage:\n"), "\(file): \(source.prefix(600))")
            XCTAssertTrue(source.contains("#     model = load(\"\(file)\")  # \(call)\n"), "\(file): \(source.prefix(600))")
            assertLoadsStrictly(try parsed(source), prefix: "", otherNames: otherNames)
        }
    }

    /// A projection keeps `lstm_cell`'s `weight_hr` lines; a prefix reaches `load`.
    func testProjectionAndPrefix() throws {
        let json = """
            {"format": "recurrentkit.pytorch", "version": 2, "prefix": "net.", "modules": [
              {"type": "Masking", "mask_value": 0.5},
              {"type": "LSTM", "name": "lstm", "input_size": 4, "hidden_size": 3, "proj_size": 2},
              {"type": "Readout", "mode": "last_step"}
            ]}
            """
        let module = try parsed(try PythonEmitter.source(modelConfig: json, weightsFile: "p.h5"))
        let model = try model(module)
        XCTAssertEqual(model.declarations.map(\.description), ["self.lstm = nn.LSTM(4, 3, batch_first=True, proj_size=2)"])
        XCTAssertEqual(model.methods["forward"]?.body, [
            "mask = valid_steps(x, lengths)", "x, present = masking(x, 0.5)", "mask = mask & present",
            "x, _ = run_recurrent(self.lstm, x, mask)", "x = last_valid_step(x, mask)", "return x",
        ])
        XCTAssertTrue(module.functions["lstm_cell"]?.contains("if w['weight_hr'] is not None:\n    h = F.linear(h, w['weight_hr'])") ?? false,
                      "\(module.functions["lstm_cell"] ?? [])")
        assertLoadsStrictly(module, prefix: "net.")
    }

    func testMaskingAndMaxAll() throws {
        let json = """
            {"format": "recurrentkit.pytorch", "version": 2, "modules": [
              {"type": "Masking", "mask_value": -1.0},
              {"type": "GRU", "name": "gru", "input_size": 4, "hidden_size": 3},
              {"type": "Linear", "name": "dense", "in_features": 3, "out_features": 3},
              {"type": "Readout", "mode": "max_all"},
              {"type": "Flatten"}
            ]}
            """
        // Flatten after a readout has no time axis to flatten.
        XCTAssertThrowsError(try PythonEmitter.source(modelConfig: json, weightsFile: "m.h5")) { error in
            XCTAssertTrue("\(error)".contains("modules[4]: layer Flatten: "), "\(error)")
        }
        let valid = json.replacingOccurrences(of: ",\n  {\"type\": \"Flatten\"}", with: "")
        let module = try parsed(try PythonEmitter.source(modelConfig: valid, weightsFile: "m.h5"))
        let model = try model(module)
        XCTAssertEqual(model.declarations.map(\.description), ["self.gru = nn.GRU(4, 3, batch_first=True)",
                                                               "self.dense = nn.Linear(3, 3)"])
        XCTAssertEqual(model.methods["forward"]?.body, [
            "mask = valid_steps(x, lengths)", "x, present = masking(x, -1.0)", "mask = mask & present",
            "x, _ = run_recurrent(self.gru, x, mask)", "x = self.dense(x)", "x = x.amax(dim=1)", "return x",
        ])
        XCTAssertEqual(Set(module.functions.keys), ["valid_steps", "masking", "run_packed", "run_recurrent", "run_fused",
                                                     "run_masked", "run_direction", "merge_directions", "cell_step", "gru_cell",
                                                     "load", "read_hdf5", "read_safetensors"])
        XCTAssertEqual(module.functions["cell_step"], ["return (gru_cell(w, x_t, h), c)"])
    }

    /// The typed document a conversion holds and the JSON it wrote emit the same module.
    func testDocumentAndItsJSONEmitTheSameModule() throws {
        for name in ["clf_embed_bigru_softmax", "clf_lstm2_last_step_mlp"] {
            let json = try committedConfig(name)
            let document = try PyTorchModelConfig.decode(json, file: name)
            XCTAssertEqual(try PythonEmitter.source(modelConfig: document, weightsFile: "m.h5"),
                           try PythonEmitter.source(modelConfig: json, weightsFile: "m.h5"))
            XCTAssertEqual(try PythonEmitter.source(modelConfig: PyTorchModelConfig.decode(document.json(), file: name),
                                                    weightsFile: "m.h5"),
                           try PythonEmitter.source(modelConfig: json, weightsFile: "m.h5"))
        }
    }

    func testRefusalsNameTheModule() {
        func config(_ module: String) -> String {
            #"{"format": "recurrentkit.pytorch", "version": 2, "modules": [\#(module)]}"#
        }
        let cases: [(String, String)] = [
            (#"{"type": "LSTM", "name": "lstm_1", "input_size": 2, "hidden_size": 2, "recurrent_activation": "hard_sigmoid"}"#,
             "lstm_1 (LSTM)"),
            (#"{"type": "GRU", "name": "gru", "input_size": 2, "hidden_size": 2, "activation": "relu"}"#,
             "gru (GRU)"),
            (#"{"type": "LSTM", "name": "stack", "input_size": 2, "hidden_size": 2, "num_layers": 2, "bidirectional": true, "merge_mode": "sum"}"#,
             "stack (LSTM)"),
            (#"{"type": "Linear", "name": "dense-1", "in_features": 2, "out_features": 2}"#, "dense-1 (Linear)"),
            (#"{"type": "Linear", "name": "forward", "in_features": 2, "out_features": 2}"#, "forward (Linear)"),
            (#"{"type": "Conv1d", "name": "conv"}"#, "Conv1d"),
            (#"{"type": "Readout", "mode": "last_hidden"}"#, "Readout last_hidden"),
        ]
        for (module, named) in cases {
            XCTAssertThrowsError(try PythonEmitter.source(modelConfig: config(module), weightsFile: "m.h5"), module) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(named), "\(text) does not name \(named)")
                XCTAssertFalse(text.contains("\n"), "one line: \(text)")
            }
        }
    }

    // MARK: - Hostile names and paths

    private func linearConfig(named name: String) throws -> String {
        let module: [String: Any] = ["type": "Linear", "name": name, "in_features": 2, "out_features": 2]
        let object: [String: Any] = ["format": "recurrentkit.pytorch", "version": 2, "modules": [module]]
        return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    /// Parses `source` with Python's own parser (`ast.parse`): the emitted module is valid
    /// Python. Skipped where python3 is missing, unless RNNKIT_REQUIRE_PYTHON=1.
    private func assertParsesAsPython(_ source: String, file: StaticString = #filePath, line: UInt = #line) throws {
        _ = try parsed(source)
    }

    /// Names Python would read otherwise, or not at all, or that would replace what the
    /// emitted class relies on, are refused naming the module, escaped, on one line.
    func testHostileNamesAreRefused() throws {
        let cases: [(String, String)] = [
            ("__secret", "starts with '__'"),
            ("_modules", "starts with '_'"),
            ("\u{FF46}\u{FF4F}\u{FF52}\u{FF57}\u{FF41}\u{FF52}\u{FF44}", "Python reads it as 'forward'"),
            ("a\u{B2}", "Python reads it as 'a2'"),
            ("\u{FB01}lter", "Python reads it as 'filter'"),
            ("for", "is a Python keyword"),
            ("None", "is a Python keyword"),
            ("forward", "is an attribute of torch.nn.Module (torch 2.15.0)"),
            ("training", "is an attribute of torch.nn.Module"),
            ("eval", "is an attribute of torch.nn.Module"),
            ("load_state_dict", "is an attribute of torch.nn.Module"),
            ("register_state_dict_post_hook", "is an attribute of torch.nn.Module"),
            ("mtia", "is an attribute of torch.nn.Module"),
            ("x-y", "is not a Python identifier"),
            ("1a", "is not a Python identifier"),
            ("a b", "is not a Python identifier"),
            ("lstm\r\nimport os", "is not a Python identifier"),
            ("x\u{1B}]0;title\u{07}", "is not a Python identifier"),
            ("x\u{202E}y", "is not a Python identifier"),
            ("\u{00A0}x", "is not in NFKC form"),
            ("\u{00B7}x", "is not a Python identifier"),
        ]
        for (name, reason) in cases {
            XCTAssertThrowsError(try PythonEmitter.source(modelConfig: linearConfig(named: name), weightsFile: "m.h5"), name) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(reason), "\(name): \(text) lacks '\(reason)'")
                XCTAssertTrue(text.contains("(Linear)"), text)
                XCTAssertFalse(text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || (0x202A...0x202E).contains($0.value) },
                               "unescaped: \(text.debugDescription)")
            }
        }
    }

    /// Every public attribute of torch 2.15's nn.Module (the table
    /// scripts/torch_module_attributes.py wrote from `dir(torch.nn.Module())`) is refused as a
    /// submodule name; the emitted module lists its names and refuses to import under a torch
    /// whose nn.Module has one of them.
    func testEveryTorchModuleAttributeIsRefusedAndCheckedAgainAtImport() throws {
        XCTAssertEqual(torchModuleAttributesVersion, "2.15.0")
        XCTAssertGreaterThan(torchModuleAttributes.count, 50)
        for name in torchModuleAttributes.sorted() {
            XCTAssertEqual(pythonIdentifierProblem(name)?.contains("attribute of torch.nn.Module"), true, name)
        }
        let source = try PythonEmitter.source(modelConfig: linearConfig(named: "fc2"), weightsFile: "m.h5")
        XCTAssertTrue(source.contains("""
            SUBMODULE_NAMES = ("fc2",)
            if any(hasattr(nn.Module(), name) for name in SUBMODULE_NAMES):
                raise ImportError("submodule names that torch " + torch.__version__ + "'s nn.Module already has: "
            """), source)
        let module = try parsed(source)
        XCTAssertEqual(module.assignments["SUBMODULE_NAMES"], "('fc2',)")
        _ = try model(module)
    }

    /// Valid identifiers (soft keywords and non-ASCII letters in NFKC form included) are
    /// emitted, and the module parses as Python.
    func testUnusualButValidNamesAreEmitted() throws {
        for name in ["match", "case", "type_", "\u{E9}tat", "\u{65E5}\u{672C}", "fc2"] {
            let source = try PythonEmitter.source(modelConfig: linearConfig(named: name), weightsFile: "m.h5")
            XCTAssertTrue(source.contains("self.\(name) = nn.Linear(2, 2)"), name)
            try assertParsesAsPython(source)
        }
    }

    /// An output name holding line ends (`\r` ran code on import), form feed, a line
    /// separator or escape sequences reaches the module only escaped, in the comment and
    /// in the string literal, and the module still parses.
    func testHostileWeightsFileNamesAreEscaped() throws {
        let json = try XCTUnwrap(try HDF5File.open(fixture("pytorch/clf_embed_bigru_softmax.h5")).root.attribute("model_config")?.stringValue)
        for weights in ["m\rimport os; os.system('touch pwned')\r.h5", "m\nprint(1)\n.h5", "m\r\nx=1.h5",
                        "m\u{0C}\u{0B}\u{85}\u{2028}\u{2029}.h5", "m\u{1B}]0;t\u{07}\\\"'.h5", "caf\u{E9}.h5"] {
            let source = try PythonEmitter.source(modelConfig: json, weightsFile: weights)
            let unsafe = source.unicodeScalars.filter { $0 != "\n" && ($0.value < 0x20 || $0.value >= 0x7F) }
            XCTAssertTrue(unsafe.isEmpty, "\(weights.debugDescription): raw \(unsafe.map { String($0.value, radix: 16) })")
            let header = try XCTUnwrap(source.split(separator: "\n").first)
            XCTAssertTrue(header.hasPrefix("# Generated by rnnkit from m") || header.hasPrefix("# Generated by rnnkit from caf"),
                          String(header))
            XCTAssertFalse(source.contains("\nimport os") || source.contains("\nprint(1)") || source.contains("\nx=1"),
                           "a line of the name became code")
            try assertParsesAsPython(source)
        }
    }

    // MARK: - The tokenizer of a text model

    /// A document holding a TextVectorization with `settings` in front of an Embedding.
    private func textConfig(_ settings: [String: Any], vocabulary: [String]) throws -> String {
        var text = settings
        text["type"] = "TextVectorization"
        text["vocabulary"] = vocabulary
        let embedding: [String: Any] = ["type": "Embedding", "name": "embedding", "num_embeddings": vocabulary.count + 2,
                                        "embedding_dim": 2]
        let object: [String: Any] = ["format": "recurrentkit.pytorch", "version": 3, "modules": [text, embedding]]
        return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    /// The emitted tokenizer block alone (it needs no torch).
    private func tokenizerBlock(_ source: String) throws -> String {
        let start = try XCTUnwrap(source.range(of: tokenizerStart), "no tokenizer in the module")
        let end = try XCTUnwrap(source.range(of: tokenizerEnd))
        return String(source[start.lowerBound..<end.upperBound])
    }

    /// Runs `tokenize` from `block` on each of `texts` alone, in python3: the ids of each.
    private func runTokenizer(_ block: String, _ texts: [String]) throws -> [[Int]] {
        let script = block + "\nimport json, sys\nprint(json.dumps([tokenize([t])[0] for t in json.loads(sys.stdin.read())]))\n"
        let result = try python3(["-c", script], input: try JSONSerialization.data(withJSONObject: texts))
        guard result.status == 0 else {
            XCTFail("python3 failed on the tokenizer: \(result.stderr)")
            throw CocoaError(.fileReadCorruptFile)
        }
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[Int]])
    }

    /// The emitted `tokenize`, run in python3 from its block alone, gives real Keras's ids
    /// (the tables tf-keras and Keras 3 recorded) for every standardize × split on every
    /// recorded string: emoji, accents, the Kelvin sign, non-ASCII spaces, all punctuation.
    func testEmittedTokenizerGivesKerasIDs() throws {
        for table in ["k3_text_standardization.json", "tfk_text_standardization.json"] {
            let data = try Data(contentsOf: URL(fileURLWithPath: fixture("keras/\(table)")))
            let root = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
            let vocabulary = try XCTUnwrap(root["vocabulary"] as? [String])
            let cases = try XCTUnwrap(root["cases"] as? [[String: Any]])
            var settings: [String: [[String: Any]]] = [:]
            for item in cases {
                let key = "\(item["standardize"] as? String ?? "none")/\(item["split"] as? String ?? "none")"
                settings[key, default: []].append(item)
            }
            XCTAssertEqual(settings.count, 8, table)
            for (key, items) in settings.sorted(by: { $0.key < $1.key }) {
                let parts = key.split(separator: "/").map(String.init)
                let source = try PythonEmitter.source(modelConfig: textConfig(["standardize": parts[0], "split": parts[1]], vocabulary: vocabulary),
                                                      weightsFile: "m.h5")
                let texts = try items.map { try XCTUnwrap($0["text"] as? String) }
                let expected = try items.map { try XCTUnwrap($0["ids"] as? [Int]) }
                XCTAssertGreaterThanOrEqual(texts.count, 20, key)
                let actual = try runTokenizer(try tokenizerBlock(source), texts)
                for (index, text) in texts.enumerated() {
                    XCTAssertEqual(actual[index], expected[index], "\(table) \(key) \(escapedForDisplay(text))")
                }
            }
        }
    }

    /// Padding and cutting to `output_sequence_length` or the longest text, the empty text
    /// (id 0 only with split none), and tokens that hold quotes, backslashes, line ends and
    /// bytes Swift's `==` would call equal: the vocabulary reaches Python escaped and exactly.
    func testEmittedTokenizerPadsAndKeepsTokensExactly() throws {
        let tokens = ["a\"b\\c", "line\r\nimport os", "\u{2028}x", "é", "e\u{301}", "😀"]
        let whole = try PythonEmitter.source(modelConfig: textConfig(["standardize": "none", "split": "none"], vocabulary: tokens),
                                             weightsFile: "m.h5")
        XCTAssertFalse(whole.unicodeScalars.contains { $0 != "\n" && ($0.value < 0x20 || $0.value >= 0x7F) }, "raw control or non-ASCII characters")
        XCTAssertFalse(whole.contains("\nimport os"))
        let texts = tokens + ["", "unknown"]
        XCTAssertEqual(try runTokenizer(try tokenizerBlock(whole), texts), [[2], [3], [4], [5], [6], [7], [0], [1]])
        let cut = try PythonEmitter.source(modelConfig: textConfig(["output_sequence_length": 3], vocabulary: ["a", "b"]), weightsFile: "m.h5")
        XCTAssertEqual(try runTokenizer(try tokenizerBlock(cut), ["A b c a b", "", "b!"]), [[2, 3, 1], [0, 0, 0], [3, 0, 0]])
        // Without a length, a batch pads to its longest text.
        let open = try PythonEmitter.source(modelConfig: textConfig([:], vocabulary: ["a"]), weightsFile: "m.h5")
        let block = try tokenizerBlock(open) + "\nassert tokenize([\"a a a\", \"\", \"b\"]) == [[2, 2, 2], [0, 0, 0], [1, 0, 0]]\nassert tokenize([\"\", \" \\t\"]) == [[], []]\nassert tokenize([]) == []\n"
        _ = try runTokenizer(block, [])
    }

    /// A text model's `Model.forward` takes a list of texts (tokenized first) as well as ids;
    /// the module parses as Python and the tokenizer comes before the class.
    func testTextModelForwardTakesTexts() throws {
        let source = try PythonEmitter.source(modelConfig: textConfig(["name": "text_vectorization"], vocabulary: ["a"]), weightsFile: "m.h5")
        try assertParsesAsPython(source)
        XCTAssertTrue(source.contains("if isinstance(x, (list, tuple)):"), source)
        XCTAssertTrue(source.contains("rows = tokenize(x)"), source)
        let tokenizer = try XCTUnwrap(source.range(of: "def tokenize(texts):"))
        let model = try XCTUnwrap(source.range(of: "class Model(nn.Module):"))
        XCTAssertLessThan(tokenizer.lowerBound, model.lowerBound)
        let block = try tokenizerBlock(source)
        XCTAssertFalse(block.contains("import") || block.contains("torch.") || block.contains("nn."), "the tokenizer needs no torch")
        // Without a TextVectorization there is no tokenizer.
        XCTAssertFalse(try PythonEmitter.source(modelConfig: linearConfig(named: "fc"), weightsFile: "m.h5").contains("tokenize"))
        // A TextVectorization after the first module is refused.
        let late = try textConfig([:], vocabulary: ["a"]).replacingOccurrences(of: #""modules":["#, with: #""modules":[{"type":"Identity"},"#)
        XCTAssertThrowsError(try PythonEmitter.source(modelConfig: late, weightsFile: "m.h5")) { error in
            XCTAssertTrue("\(error)".contains("must be the first module"), "\(error)")
        }
    }
}
