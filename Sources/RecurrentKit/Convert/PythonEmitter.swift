import Foundation

/// Writes Python source that rebuilds a PyTorch-layout model as real `torch.nn` modules.
///
/// The source defines `class Model(torch.nn.Module)`, whose submodules carry the names the
/// `model_config` gives them (so `state_dict()` keys are the file's keys, less the config's
/// `prefix`), a `forward(x, lengths=None)` with the config's semantics (spec/pytorch-layout.md,
/// version 1 and 2), and `load(path)`, which reads the container the file's extension names
/// (`.pt`/`.pth` with `torch.load(..., weights_only=True)`, `.safetensors` with safetensors,
/// `.h5`/`.hdf5` with h5py, imported only then) and loads it with
/// `load_state_dict(..., strict=True)`.
///
/// Recurrent modules run through their own forward (`nn.LSTM`, `nn.GRU`, `nn.RNN`; cuDNN where
/// available) wherever PyTorch computes the config's semantics exactly: PyTorch's own
/// behaviour over lengths (`run_packed`), and Keras's options and masks (`run_recurrent`)
/// when the mask is right padding, checked at run time: packed with lengths `mask.sum(1)`,
/// `go_backwards` as each sequence's valid part reversed, `masked_output` "carry" as the last
/// valid output repeated, merge modes on the two halves, `return_sequences=False` as `h_n`.
/// A Python step loop over the module's own parameters (`run_masked`) runs only where
/// PyTorch has no equivalent: a mask with a hole (a masked step before a valid one), and
/// `go_backwards` on a stacked or bidirectional module; the emitted code says which, at the loop.
package enum PythonEmitter {
    /// The Python module for a file's `model_config` attribute as stored (version 1 or 2):
    /// decoded as the reader decodes it, then `source(modelConfig:weightsFile:)`.
    package static func source(modelConfig json: String, weightsFile: String) throws -> String {
        try source(modelConfig: PyTorchModelConfig.decode(json, file: weightsFile), weightsFile: weightsFile)
    }

    /// The Python module for a `model_config` document.
    ///
    /// - Parameters:
    ///   - document: the document, as the writer built it or the reader decoded it.
    ///   - weightsFile: the file it describes, named in the header and in errors.
    /// - Throws: `ModelError` naming the module for a config that torch modules cannot
    ///   express (an LSTM or GRU activation other than tanh/sigmoid, a stacked bidirectional
    ///   module that does not concatenate its directions, a name that is not a Python
    ///   identifier).
    static func source(modelConfig document: ModelConfigDocument, weightsFile: String) throws -> String {
        let config = PyTorchModelConfig(document: document)
        var plan = _Plan(file: weightsFile, prefix: config.prefix)
        for (index, module) in config.modules.enumerated() {
            try plan.add(module, index: index, rest: config.modules[(index + 1)...])
        }
        return plan.render()
    }
}

/// Python helper functions the emitted module may need; each is written only when used.
private enum _Helper: Int, Comparable {
    case validSteps, masking, packed, recurrent, masked, rnnCell, lstmCell, gruCell, mean, max, lastStep

    static func < (a: _Helper, b: _Helper) -> Bool { a.rawValue < b.rawValue }
}

/// The emitted module, built one config module at a time.
private struct _Plan {
    let file: String
    let prefix: String
    /// The container `file` is, by its extension.
    let container: _Container
    var initLines: [String] = []
    var forwardLines: [String] = []
    var helpers: Set<_Helper> = []
    var usesFunctional = false
    var usesProjection = false
    var usedNames: Set<String> = []
    /// Whether the data still has a time axis.
    var hasTime = true
    /// Whether a mask other than lengths (mask_zero, Masking) may mark steps: then the mask
    /// need not be a right-padding suffix, and recurrent modules cannot run packed.
    var maskFromData = false
    /// The most recent recurrent module, for `last_hidden` readouts.
    var lastRecurrent: PyTorchReader.RecurrentOptions?

    init(file: String, prefix: String) {
        self.file = file
        self.prefix = prefix
        container = _Container(file: file)
    }

    private func refuse(_ index: Int, _ label: String, _ message: String) -> ModelError {
        ModelError(file: file, path: "model_config modules[\(index)]", layer: label,
                   message: "cannot be written as torch modules: \(message)")
    }

    /// Checks that `name` can be written as `self.<name>` in the emitted class and means
    /// exactly that module (`_pythonIdentifierProblem(_:)`), and that no other module has it.
    private mutating func attribute(_ name: String, index: Int, label: String) throws -> String {
        if let problem = _pythonIdentifierProblem(name) {
            throw refuse(index, label, "the name '\(shown(name))' \(problem)")
        }
        guard usedNames.insert(name).inserted else {
            throw refuse(index, label, "the name '\(shown(name))' is used by an earlier module")
        }
        return name
    }

    private func requireTime(_ index: Int, _ label: String) throws {
        guard hasTime else {
            throw refuse(index, label, "needs [batch, time, features], but an earlier module removed the time axis")
        }
    }

    mutating func add(_ module: PyTorchModelConfig.Module, index: Int,
                      rest: ArraySlice<PyTorchModelConfig.Module>) throws {
        switch module {
        case let .embedding(name, count, dimension, maskZero, paddingIndex):
            let label = "\(name) (Embedding)"
            guard index == 0 else { throw refuse(index, label, "an Embedding must be the first module") }
            let attribute = try attribute(name, index: index, label: label)
            initLines.append("self.\(attribute) = nn.Embedding(\(count), \(dimension)\(paddingIndex.map { ", padding_idx=\($0)" } ?? ""))")
            if maskZero {
                helpers.insert(.validSteps)
                maskFromData = true
                forwardLines.append("mask = mask & (x != 0)  # mask_zero: id 0 marks a masked step")
            }
            forwardLines.append("x = self.\(attribute)(x)")

        case let .masking(value):
            try requireTime(index, "Masking")
            helpers.formUnion([.validSteps, .masking])
            maskFromData = true
            forwardLines.append("x, present = masking(x, \(_pythonFloat(value)))")
            forwardLines.append("mask = mask & present")

        case .flatten:
            try requireTime(index, "Flatten")
            hasTime = false
            forwardLines.append("x = x.flatten(1)")

        case let .recurrent(options):
            try addRecurrent(options, index: index, rest: rest)

        case let .linear(name, inFeatures, outFeatures, bias):
            let attribute = try attribute(name, index: index, label: "\(name) (Linear)")
            initLines.append("self.\(attribute) = nn.Linear(\(inFeatures), \(outFeatures)\(bias ? "" : ", bias=False"))")
            forwardLines.append("x = self.\(attribute)(x)")

        case let .activation(type, activation):
            guard let call = ActivationNames.pythonCalls.name(activation) else {
                throw refuse(index, type, "activation \(activation.rawValue) has no torch function")
            }
            usesFunctional = usesFunctional || call.hasPrefix("F.")
            forwardLines.append("x = \(call)")

        case let .readout(readout, text):
            try addReadout(readout, text: text, index: index)

        case let .identity(type):
            forwardLines.append("# \(type): the identity at inference")
        }
    }

    private mutating func addRecurrent(_ options: PyTorchReader.RecurrentOptions, index: Int,
                                       rest: ArraySlice<PyTorchModelConfig.Module>) throws {
        let kind = options.kind ?? .lstm
        let type = PyTorchLayout.moduleType(kind)
        let label = "\(options.name) (\(type))"
        try requireTime(index, label)
        let attribute = try attribute(options.name, index: index, label: label)
        let layers = options.numLayers ?? 1
        let bidirectional = options.bidirectional ?? false
        let projection = options.projectionSize ?? 0
        if kind != .rnn && (options.nonlinearity != .tanh || options.recurrentActivation != .sigmoid) {
            throw refuse(index, label, "nn.\(type) computes tanh and sigmoid; this module asks for activation \(options.nonlinearity.rawValue) and recurrent_activation \(options.recurrentActivation.rawValue)")
        }
        if bidirectional && layers > 1 && options.merge != .concat {
            throw refuse(index, label, "nn.\(type) feeds the concatenated directions to the next layer; merge_mode \(options.merge.rawValue) with num_layers \(layers) has no torch module")
        }

        var arguments = ["\(options.inputSize ?? 0)", "\(options.hiddenSize ?? 0)"]
        if layers != 1 { arguments.append("num_layers=\(layers)") }
        if kind == .rnn && options.nonlinearity == .relu { arguments.append("nonlinearity=\"relu\"") }
        if options.bias == false { arguments.append("bias=False") }
        arguments.append("batch_first=True")
        if bidirectional { arguments.append("bidirectional=True") }
        if projection > 0 { arguments.append("proj_size=\(projection)") }
        initLines.append("self.\(attribute) = nn.\(type)(\(arguments.joined(separator: ", ")))")

        // h_n is kept only when a later readout reads it before another recurrent module.
        var needsFinalState = false
        for later in rest {
            if case .recurrent = later { break }
            if case let .readout(readout, _) = later, readout == .lastHidden || readout == .lastHiddenAllDirections {
                needsFinalState = true
            }
        }
        let targets = needsFinalState ? "x, h_n" : "x, _"

        let pytorchDefaults = options.maskedOutput == .zero && !options.goBackwards && options.merge == .concat
            && options.returnSequences
        if pytorchDefaults && !maskFromData {
            helpers.insert(.packed)
            forwardLines.append("\(targets) = run_packed(self.\(attribute), x, lengths)")
        } else {
            helpers.formUnion([.validSteps, .masked])
            switch kind {
            case .rnn: helpers.insert(.rnnCell)
            case .lstm: helpers.insert(.lstmCell)
            case .gru: helpers.insert(.gruCell)
            }
            usesFunctional = true
            usesProjection = usesProjection || projection > 0
            var call = ["self.\(attribute)", "x", "mask"]
            if options.maskedOutput == .carry { call.append("masked_output=\"carry\"") }
            if options.goBackwards { call.append("go_backwards=True") }
            if options.merge != .concat { call.append("merge=\"\(options.merge.rawValue)\"") }
            if !options.returnSequences { call.append("return_sequences=False") }
            let arguments = call.joined(separator: ", ")
            if let reason = stepLoopReason(options, type: type, layers: layers, bidirectional: bidirectional) {
                forwardLines.append("# Step loop: \(reason).")
                forwardLines.append("\(targets) = run_masked(\(arguments))")
            } else {
                helpers.formUnion([.recurrent, .packed])
                forwardLines.append("\(targets) = run_recurrent(\(arguments))")
            }
        }
        hasTime = options.returnSequences
        lastRecurrent = options
    }

    /// Why a module with Keras options must run the step loop whatever the mask, or nil when
    /// its own forward computes them over right padding (`run_recurrent` checks the mask).
    private func stepLoopReason(_ options: PyTorchReader.RecurrentOptions, type: String, layers: Int,
                                 bidirectional: Bool) -> String? {
        guard options.goBackwards else { return nil }
        if bidirectional {
            return "go_backwards on a bidirectional module runs both directions over the reversed sequence; nn.\(type) has no such mode"
        }
        if layers > 1 {
            return "go_backwards with num_layers \(layers) runs every layer over its input reversed, each fed the previous layer's outputs in processing order; nn.\(type) has no such mode"
        }
        return nil
    }

    private mutating func addReadout(_ readout: Readout, text: String, index: Int) throws {
        let label = "Readout \(text)"
        try requireTime(index, label)
        hasTime = false
        switch readout {
        case .lastHidden, .lastHiddenAllDirections:
            guard let recurrent = lastRecurrent else {
                throw refuse(index, label, "needs a recurrent module before it")
            }
            if readout == .lastHiddenAllDirections && recurrent.bidirectional == true {
                forwardLines.append("x = torch.cat([h_n[-2], h_n[-1]], dim=1)")
            } else {
                forwardLines.append("x = h_n[-1]")
            }
        case .meanOverValidSteps:
            helpers.formUnion([.validSteps, .mean])
            forwardLines.append("x = mean_over_valid_steps(x, mask)")
        case .maxOverValidSteps:
            helpers.formUnion([.validSteps, .max])
            forwardLines.append("x = max_over_valid_steps(x, mask)")
        case .maxOverAllSteps:
            forwardLines.append("x = x.amax(dim=1)  # every step, masked ones included (Keras GlobalMaxPooling1D)")
        case .lastValidStep:
            helpers.formUnion([.validSteps, .lastStep])
            forwardLines.append("x = last_valid_step(x, mask)")
        }
    }

    /// `cell_step`, dispatching to the cells of the kinds the step loop runs.
    private func cellStepSource() -> String {
        var calls: [(type: String, call: String)] = []
        if helpers.contains(.lstmCell) { calls.append(("LSTM", "lstm_cell(w, x_t, h, c)")) }
        if helpers.contains(.gruCell) { calls.append(("GRU", "gru_cell(w, x_t, h), c")) }
        if helpers.contains(.rnnCell) { calls.append(("RNN", "rnn_cell(rnn, w, x_t, h), c")) }
        var out = """
            def cell_step(rnn, w, x_t, h, c):
                \"\"\"One step of `rnn`'s cell with one direction's parameters `w`; returns (h, c).\"\"\"

            """
        for (type, call) in calls.dropLast() {
            out += "    if isinstance(rnn, nn.\(type)):\n        return \(call)\n"
        }
        out += "    return \(calls.last!.call)\n"
        return out
    }

    func render() -> String {
        var out = """
            # Generated by rnnkit from \(_pythonComment(file)).
            #
            # The model its model_config describes, as torch modules whose state_dict keys are the
            # file's keys\(prefix.isEmpty ? "" : " (less the prefix \(_pythonString(prefix)))"). The file is \(container.description). Usage:
            #
            #     model = load(\(_pythonString(file)))  # \(container.loadCall)
            #     y = model(x, lengths)  # x: float [batch, time, features] or int64 ids [batch, time]
            #
            # Requires torch; load() imports h5py for .h5/.hdf5 files and safetensors for .safetensors
            # files, only when it reads one.

            import torch
            from torch import nn

            """
        if usesFunctional { out += "from torch.nn import functional as F\n" }
        if helpers.contains(.packed) {
            out += "from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence\n"
        }
        if !prefix.isEmpty { out += "\nPREFIX = \(_pythonString(prefix))  # before every key in the file\n" }

        out += "\n\nclass Model(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        for line in initLines { out += "        \(line)\n" }
        out += """

                def forward(self, x, lengths=None):
                    \"\"\"x: float [batch, time, features] or int64 token ids [batch, time];
                    lengths: [batch] valid steps per (right-padded) sequence, or None for all.\"\"\"

            """
        if helpers.contains(.validSteps) { out += "        mask = valid_steps(x, lengths)\n" }
        for line in forwardLines { out += "        \(line)\n" }
        out += "        return x\n"

        for helper in helpers.sorted() {
            var text = _helperSource[helper]!
            if helper == .lstmCell && !usesProjection {
                text = text.replacingOccurrences(of: _projectionLines, with: "")
                    .replacingOccurrences(of: " (then W_hr h')", with: "")
            }
            out += "\n\n" + text + "\n"
            if helper == .masked { out += "\n\n" + cellStepSource() }
        }
        out += "\n\n" + _loadSource(prefixed: !prefix.isEmpty, written: container)
        return out
    }
}

// MARK: - Python text

/// Python's keywords (`keyword.kwlist`): none can be an attribute name. Soft keywords
/// (`match`, `case`, `type`, `_`) can.
private let _pythonKeywords: Set<String> = [
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
]

/// What nn.Module itself defines, and what the emitted class and `load` rely on: a submodule
/// under one of these names would replace it (`self.forward = nn.Linear(...)` breaks the
/// model; `self.eval = ...` breaks `load`). Names starting with `_` are refused apart
/// (`_modules`, `_parameters` and the other private state).
private let _moduleAttributes: Set<String> = [
    "forward", "training", "train", "eval", "state_dict", "load_state_dict", "parameters",
    "named_parameters", "buffers", "named_buffers", "children", "named_children", "modules",
    "named_modules", "apply", "to", "to_empty", "cpu", "cuda", "ipu", "xpu", "mtia", "float", "double", "half",
    "bfloat16", "type", "zero_grad", "share_memory", "compile", "register_buffer", "register_parameter",
    "register_module", "add_module", "get_submodule", "set_submodule", "get_parameter", "get_buffer",
    "get_extra_state", "set_extra_state", "requires_grad_", "extra_repr", "dump_patches", "call_super_init",
    "register_forward_hook", "register_forward_pre_hook", "register_backward_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook", "register_state_dict_hook",
    "register_state_dict_pre_hook", "register_load_state_dict_pre_hook", "register_load_state_dict_post_hook",
    "T_destination",
]

/// Why `name` cannot be written as `self.<name>` in the emitted class, or nil when it can.
///
/// Python's own rules, as it reads source: the name is NFKC-normalised first
/// (`ｆｏｒｗａｒｄ` would be `forward`, `a²` would be `a2`), so a name must already be in
/// NFKC form to mean itself; then `str.isidentifier` (a first character with the XID_Start
/// property or `_`, the rest XID_Continue), not a keyword, no leading `__` (inside a class
/// `self.__x` is mangled to `self._Model__x`), and not an nn.Module attribute.
func _pythonIdentifierProblem(_ name: String) -> String? {
    let normalised = name.precomposedStringWithCompatibilityMapping
    guard normalised.unicodeScalars.elementsEqual(name.unicodeScalars) else {
        return "is not in NFKC form: Python reads it as '\(shown(normalised))'"
    }
    guard let first = name.unicodeScalars.first,
          first == "_" || first.properties.isXIDStart,
          name.unicodeScalars.dropFirst().allSatisfy({ $0.properties.isXIDContinue }) else {
        return "is not a Python identifier"
    }
    if _pythonKeywords.contains(name) { return "is a Python keyword" }
    if name.hasPrefix("__") { return "starts with '__', which Python mangles inside a class" }
    if name.hasPrefix("_") { return "starts with '_', as nn.Module's private attributes do" }
    if _moduleAttributes.contains(name) { return "is an nn.Module attribute the model relies on" }
    return nil
}

/// `text` as it may stand in a Python comment: printable ASCII kept, everything else
/// (line ends `\r` and `\n`, form feed, other controls, non-ASCII) written as an escape,
/// so the comment ends where the emitter ends it.
func _pythonComment(_ text: String) -> String {
    var out = ""
    for scalar in text.unicodeScalars {
        switch scalar {
        case " "..."~": out.unicodeScalars.append(scalar)
        default: out += scalar.value <= 0xFF
            ? String(format: "\\x%02x", scalar.value) : String(format: "\\u{%04x}", scalar.value)
        }
    }
    return out
}

/// A Python float literal that reads back as the same `Float`.
private func _pythonFloat(_ value: Float) -> String {
    if value.isNaN { return "float(\"nan\")" }
    if value.isInfinite { return value > 0 ? "float(\"inf\")" : "-float(\"inf\")" }
    return "\(value)"
}

/// A double-quoted Python string literal.
private func _pythonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\\": out += "\\\\"
        case "\"": out += "\\\""
        case " "..."~": out.unicodeScalars.append(scalar)
        default: out += scalar.value <= 0xFFFF
            ? String(format: "\\u%04x", scalar.value) : String(format: "\\U%08x", scalar.value)
        }
    }
    return out + "\""
}

/// The lines of `lstm_cell` that apply a projection, left out when no LSTM has one.
private let _projectionLines = "    if w[\"weight_hr\"] is not None:  # proj_size > 0\n        h = F.linear(h, w[\"weight_hr\"])\n"

private let _helperSource: [_Helper: String] = [
    .validSteps: #"""
        def valid_steps(x, lengths):
            """[batch, time] bool: step t of sequence b is valid when t < lengths[b] (every step without lengths)."""
            batch, time = x.shape[0], x.shape[1]
            if lengths is None:
                return torch.ones(batch, time, dtype=torch.bool, device=x.device)
            steps = torch.arange(time, device=x.device)
            return steps[None, :] < torch.as_tensor(lengths, device=x.device)[:, None]
        """#,
    .masking: #"""
        def masking(x, mask_value):
            """Keras Masking: a step whose features all equal mask_value is masked, and its features become 0."""
            present = (x != mask_value).any(dim=-1)
            return x * present[..., None], present
        """#,
    .packed: #"""
        def run_packed(rnn, x, lengths):
            """Runs `rnn` as PyTorch does on right-padded sequences: outputs past a sequence's length are 0,
            and h_n holds each sequence's state after its own last step. Returns (output, h_n)."""
            if lengths is None:
                output, state = rnn(x)
            else:
                lengths = torch.as_tensor(lengths, dtype=torch.int64).cpu()
                packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
                output, state = rnn(packed)
                output, _ = pad_packed_sequence(output, batch_first=True, total_length=x.shape[1])
            h_n = state[0] if isinstance(state, tuple) else state  # an LSTM's state is (h_n, c_n)
            return output, h_n
        """#,
    .recurrent: #"""
        def run_recurrent(rnn, x, mask, masked_output="zero", go_backwards=False, merge="concat", return_sequences=True):
            """run_masked's result (Keras's masking rules and options), through rnn's own forward when the mask
            is right padding (each row: valid steps, then masked ones). Returns (output, h_n)."""
            if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
                # Step loop: a masked step comes before a valid one (a hole in the mask, such as a 0 token
                # or a Masking row mid-sequence); packed sequences can only end early.
                return run_masked(rnn, x, mask, masked_output, go_backwards, merge, return_sequences)
            return run_fused(rnn, x, mask.sum(dim=1), masked_output, go_backwards, merge, return_sequences)


        def run_fused(rnn, x, lengths, masked_output="zero", go_backwards=False, merge="concat", return_sequences=True):
            """run_masked's result for right-padded sequences of lengths [batch] valid steps, from rnn's own forward.

            The valid steps run packed; padded outputs are 0, h_n holds each sequence's state after its last valid
            step, and an empty sequence (length 0) has zero outputs and states. go_backwards (one layer, one
            direction): each sequence's valid part runs reversed, and its outputs follow the T - n padded steps that
            processing meets first, where the output is 0. masked_output "carry" repeats the last valid output over
            the padding (the forward direction; the backward one meets the padding first, so it emits 0 there).
            """
            time = x.shape[1]
            steps = torch.arange(time, device=x.device)
            if go_backwards:
                reversal = (lengths[:, None] - 1 - steps[None, :]) % time
                x = x.gather(1, reversal[..., None].expand(-1, -1, x.shape[2]))
            full = bool((lengths == time).all())
            output, h_n = run_packed(rnn, x, None if full else lengths.clamp(min=1))
            if not full:
                present = lengths > 0
                output = torch.where(present[:, None, None], output, 0.0)
                h_n = torch.where(present[None, :, None], h_n, 0.0)
            directions = 2 if rnn.bidirectional else 1
            if not return_sequences:
                return merge_directions(list(h_n[-directions:]), merge), h_n
            halves = list(output.chunk(directions, dim=-1))
            if go_backwards:
                placed = (steps[None, :] + lengths[:, None]) % time
                halves[0] = halves[0].gather(1, placed[..., None].expand(-1, -1, halves[0].shape[2]))
            elif masked_output == "carry" and not full:
                last = (lengths.clamp(min=1) - 1)[:, None, None].expand(-1, 1, halves[0].shape[2])
                valid = (steps[None, :] < lengths[:, None])[..., None]
                halves[0] = torch.where(valid, halves[0], halves[0].gather(1, last))
            return merge_directions(halves, merge), h_n
        """#,
    .masked: #"""
        def run_masked(rnn, x, mask, masked_output="zero", go_backwards=False, merge="concat", return_sequences=True):
            """Runs `rnn` one step at a time with Keras's masking rules, on its own parameters.

            At a step where mask [batch, time] is False the state is carried unchanged and the output is 0
            (masked_output "zero") or the previous output ("carry", 0 before the first valid step).
            go_backwards runs over the reversed sequence and emits outputs in that order; the backward
            direction of a bidirectional module stores each output at its own step. Every layer gets these
            options; return_sequences=False returns the merged final states of the last layer.
            Returns (output, h_n), h_n [layers * directions, batch, hidden] as PyTorch orders it.
            """
            directions = 2 if rnn.bidirectional else 1
            h_n = []
            for layer in range(rnn.num_layers):
                outputs = []
                for direction in range(directions):
                    suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                    output, h = run_direction(rnn, suffix, x, mask, reverse=direction == 1 or go_backwards,
                                              processing_order=go_backwards, carry=masked_output == "carry")
                    outputs.append(output)
                    h_n.append(h)
                x = merge_directions(outputs, merge)
            if not return_sequences:
                x = merge_directions(h_n[-directions:], merge)
            return x, torch.stack(h_n)


        def run_direction(rnn, suffix, x, mask, reverse, processing_order, carry):
            """One layer and direction of `rnn` (parameters named *{suffix}) over x [batch, time, features]."""
            w = {name: getattr(rnn, name + suffix, None)
                 for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")}
            batch, time = x.shape[0], x.shape[1]
            h = x.new_zeros(batch, rnn.proj_size or rnn.hidden_size)
            c = x.new_zeros(batch, rnn.hidden_size)  # the cell state, used by an LSTM only
            outputs = [None] * time
            steps = range(time - 1, -1, -1) if reverse else range(time)
            for position, t in enumerate(steps):
                new_h, new_c = cell_step(rnn, w, x[:, t], h, c)
                valid = mask[:, t, None]
                h = torch.where(valid, new_h, h)
                c = torch.where(valid, new_c, c)
                # With zero initial states the carried output is the carried state itself.
                outputs[position if processing_order else t] = h if carry else torch.where(valid, h, 0.0)
            return torch.stack(outputs, dim=1), h


        def merge_directions(outputs, merge):
            """Keras Bidirectional merge_mode for [forward, backward]; a single direction passes through."""
            if len(outputs) == 1:
                return outputs[0]
            forward, backward = outputs
            if merge == "concat":
                return torch.cat([forward, backward], dim=-1)
            if merge == "sum":
                return forward + backward
            if merge == "mul":
                return forward * backward
            return (forward + backward) / 2  # "ave"
        """#,
    .rnnCell: #"""
        def rnn_cell(rnn, w, x_t, h):
            """nn.RNN's cell: h' = nonlinearity(W_ih x + b_ih + W_hh h + b_hh)."""
            pre = F.linear(x_t, w["weight_ih"], w["bias_ih"]) + F.linear(h, w["weight_hh"], w["bias_hh"])
            return torch.relu(pre) if rnn.nonlinearity == "relu" else torch.tanh(pre)
        """#,
    .lstmCell: #"""
        def lstm_cell(w, x_t, h, c):
            """nn.LSTM's cell, gate blocks i, f, g, o: c' = f c + i g, h' = o tanh(c') (then W_hr h')."""
            gates = F.linear(x_t, w["weight_ih"], w["bias_ih"]) + F.linear(h, w["weight_hh"], w["bias_hh"])
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            if w["weight_hr"] is not None:  # proj_size > 0
                h = F.linear(h, w["weight_hr"])
            return h, c
        """#,
    .gruCell: #"""
        def gru_cell(w, x_t, h):
            """nn.GRU's cell, gate blocks r, z, n: n = tanh(x_n + r (W_hn h + b_hn)), h' = (1 - z) n + z h."""
            x_r, x_z, x_n = F.linear(x_t, w["weight_ih"], w["bias_ih"]).chunk(3, dim=1)
            h_r, h_z, h_n = F.linear(h, w["weight_hh"], w["bias_hh"]).chunk(3, dim=1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + r * h_n)
            return (1 - z) * n + z * h
        """#,
    .mean: #"""
        def mean_over_valid_steps(x, mask):
            """Mean of x [batch, time, features] over each sequence's valid steps (0 when it has none)."""
            weights = mask[..., None].to(x.dtype)
            return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        """#,
    .max: #"""
        def max_over_valid_steps(x, mask):
            """Maximum of x [batch, time, features] over each sequence's valid steps (0 when it has none)."""
            largest = x.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)
            return torch.where(mask.any(dim=1)[:, None], largest, 0.0)
        """#,
    .lastStep: #"""
        def last_valid_step(x, mask):
            """x [batch, time, features] at each sequence's last valid step (0 when it has none)."""
            steps = torch.arange(x.shape[1], device=x.device)
            last = torch.where(mask, steps, -1).amax(dim=1)
            rows = torch.arange(x.shape[0], device=x.device)
            return torch.where((last >= 0)[:, None], x[rows, last.clamp(min=0)], 0.0)
        """#,
]

/// The container a weights file is, by its extension (as `load` chooses at run time).
private enum _Container {
    /// A `torch.save` zip (`.pt`, `.pth`).
    case torchSave
    case safetensors
    /// HDF5 (`.h5`, `.hdf5`, and any other name: what rnnkit writes there).
    case hdf5

    init(file: String) {
        let name = file.lowercased()
        if name.hasSuffix(".pt") || name.hasSuffix(".pth") { self = .torchSave }
        else if name.hasSuffix(".safetensors") { self = .safetensors }
        else { self = .hdf5 }
    }

    var description: String {
        switch self {
        case .torchSave: return "a torch.save state_dict (a zip)"
        case .safetensors: return "a safetensors file"
        case .hdf5: return "HDF5, one dataset per key"
        }
    }

    /// What `load` calls for this container, for the header.
    var loadCall: String {
        switch self {
        case .torchSave: return "torch.load(path, weights_only=True, map_location=\"cpu\")"
        case .safetensors: return "safetensors.torch.load_file(path)"
        case .hdf5: return "h5py"
        }
    }

    /// The statement of `load` that reads this container into `state`.
    var readStatement: String {
        switch self {
        case .torchSave: return "state = torch.load(path, weights_only=True, map_location=\"cpu\")"
        case .safetensors: return "state = read_safetensors(path)"
        case .hdf5: return "state = read_hdf5(path)"
        }
    }
}

private func _loadSource(prefixed: Bool, written: _Container) -> String {
    let key = prefixed ? "key.removeprefix(PREFIX)" : "key"
    return """
        def load(path):
            \"\"\"Reads the state_dict at `path` as float32 tensors, from the container its extension names:
            .pt/.pth (torch.save), .safetensors, .h5/.hdf5 (any other name: \(written.description)).
            Loads it with strict=True and returns the model in eval mode.\"\"\"
            name = str(path).lower()
            if name.endswith((".pt", ".pth")):
                \(_Container.torchSave.readStatement)
            elif name.endswith(".safetensors"):
                \(_Container.safetensors.readStatement)
            elif name.endswith((".h5", ".hdf5")):
                \(_Container.hdf5.readStatement)
            else:
                \(written.readStatement)
            state = {\(key): value.float() for key, value in state.items()}
            model = Model()
            model.load_state_dict(state, strict=True)
            return model.eval()


        def read_safetensors(path):
            \"\"\"The tensors of a safetensors file by key.\"\"\"
            from safetensors.torch import load_file  # only safetensors files need it

            return load_file(path)


        def read_hdf5(path):
            \"\"\"The datasets of an HDF5 file by key, each path's '/' read as '.' (nested groups or flat dotted names).\"\"\"
            import h5py  # only HDF5 files need it

            state = {}

            def read(name, value):
                if isinstance(value, h5py.Dataset):
                    state[name.replace("/", ".")] = torch.from_numpy(value[()].astype("float32"))

            with h5py.File(path, "r") as file:
                file.visititems(read)
            return state

        """
}
