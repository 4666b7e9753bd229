import Foundation
import TextSafety

/// Keras's `TextVectorization` as files keep it: its config's settings, checked one by one,
/// and its vocabulary, from the config (given with `vocabulary=`) or from a `.keras`
/// archive's vocabulary file (adapted). See spec/keras-layout.md, "Text vectorization".
enum KerasTextVectorization {
    /// The settings the engine's `TextVectorizer` takes, and their names for `inspect`.
    struct Settings {
        /// Keras's name (`TextVectorizer.standardizations`), nil for None.
        var standardize: String?
        var split: TextVectorizer.Split
        var maxTokens: Int?
        var outputSequenceLength: Int?
        var padToMaxTokens: Bool

        /// The rules `standardize` names: none for None.
        var standardization: (lowercase: Bool, stripPunctuation: Bool) {
            standardize.flatMap(TextVectorizer.standardization(named:)) ?? (false, false)
        }
    }

    /// Why a setting is refused: one line naming the field.
    struct Refusal: Error {
        var message: String
    }

    /// Reads and checks every setting that changes what the layer computes. Supported:
    /// `standardize` (`lower_and_strip_punctuation`, `lower`, `strip_punctuation`, None),
    /// `split` (`whitespace`, None), `output_mode="int"`, `max_tokens`,
    /// `output_sequence_length`, `ngrams=None`, `sparse` and `ragged` false, no
    /// `idf_weights`, the `utf-8` encoding; `pad_to_max_tokens` has no effect in `int` mode.
    /// A key the config lacks takes Keras's default; JSON null is Python's None.
    static func settings(_ config: [String: Any], path: String) -> Result<Settings, Refusal> {
        func refuse(_ key: String, _ why: String) -> Result<Settings, Refusal> {
            .failure(Refusal(message: "\(path).\(key) \(why)"))
        }
        func text(_ value: Any?) -> String { escapedForDisplay(value.map { "\($0)" } ?? "None") }

        let mode = config["output_mode"] ?? "int"
        guard mode as? String == "int" else {
            return refuse("output_mode", "'\(text(mode))' is not supported (\"int\" is: token ids for an Embedding)")
        }
        var standardize: String?
        switch config["standardize"] {
        case nil: standardize = TextVectorizer.defaultStandardizeName
        case is NSNull: standardize = nil
        case let name as String where TextVectorizer.standardization(named: name) != nil: standardize = name
        case let other?:
            let callable = other is [String: Any] ? " (a Python function, which rnnkit never runs)" : ""
            let names = TextVectorizer.standardizations.map(\.name).joined(separator: ", ")
            return refuse("standardize", "'\(text(other))'\(callable) is not supported (\(names) or None are)")
        }
        let split: TextVectorizer.Split
        switch config["split"] {
        case nil: split = .whitespace
        case is NSNull: split = .none
        case let name as String where name == TextVectorizer.Split.whitespace.rawValue: split = .whitespace
        case let other?:
            let callable = other is [String: Any] ? " (a Python function, which rnnkit never runs)" : ""
            return refuse("split", "'\(text(other))'\(callable) is not supported (whitespace or None are)")
        }
        if let ngrams = config["ngrams"], !(ngrams is NSNull) {
            return refuse("ngrams", "\(text(ngrams)) is not supported (None is)")
        }
        for flag in ["sparse", "ragged"] {
            switch KerasConfig.flag(config[flag], default: false) {
            case .success(false): continue
            case .success(true): return refuse(flag, "True is not supported (False is: dense token ids)")
            case .failure(let error): return refuse(flag, error.message)
            }
        }
        if let weights = config["idf_weights"], !(weights is NSNull) {
            return refuse("idf_weights", "are given; they are used only by output_mode \"tf_idf\", which is not supported")
        }
        if let encoding = config["encoding"], !(encoding is NSNull) {
            let name = (encoding as? String)?.lowercased().filter { $0 != "-" && $0 != "_" }
            guard name == "utf8" else { return refuse("encoding", "'\(text(encoding))' is not supported (utf-8 is)") }
        }
        func size(_ key: String) -> Result<Int?, Refusal> {
            guard let value = config[key], !(value is NSNull) else { return .success(nil) }
            return KerasConfig.integer(value, in: 1...Limits.dimension).map { $0 }
                .mapError { Refusal(message: "\(path).\(key) \($0.message)") }
        }
        let maxTokens: Int?, outputSequenceLength: Int?
        switch (size("max_tokens"), size("output_sequence_length")) {
        case let (.success(tokens), .success(length)): (maxTokens, outputSequenceLength) = (tokens, length)
        case let (.failure(refusal), _), let (_, .failure(refusal)): return .failure(refusal)
        }
        let padToMaxTokens: Bool
        switch KerasConfig.flag(config["pad_to_max_tokens"], default: false) {
        case .success(let flag): padToMaxTokens = flag
        case .failure(let error): return refuse("pad_to_max_tokens", error.message)
        }
        return .success(Settings(standardize: standardize, split: split, maxTokens: maxTokens,
                                 outputSequenceLength: outputSequenceLength, padToMaxTokens: padToMaxTokens))
    }

    /// The entries of a vocabulary file as Keras 3 loads it (`IndexLookup.load_assets`): the
    /// file read as UTF-8 text with universal newlines (`\r\n` and `\r` become `\n`), split as
    /// Python's `str.splitlines()` splits (at `\n`, `\v`, `\f`, `\x1c`, `\x1d`, `\x1e`,
    /// `\x85`, `\u2028`, `\u2029` too), and trailing empty lines dropped. Nil when the bytes
    /// are not valid UTF-8.
    ///
    /// Keras writes the file as `"\n".join(vocabulary)`, so a token holding one of those
    /// characters comes back as several lines, in Keras too: the entries are what Keras
    /// itself reloads.
    ///
    /// One pass over the bytes into a ``TokenList`` (no string per line): in valid UTF-8 the
    /// bytes of those separators (`C2 85`, `E2 80 A8`, `E2 80 A9` and the single ASCII bytes)
    /// occur only as those characters, so each line is the bytes between two of them.
    static func vocabularyLines(_ bytes: [UInt8]) -> TokenList? {
        guard String(validating: bytes, as: UTF8.self) != nil else { return nil }
        var lines = TokenList()
        bytes.withUnsafeBufferPointer { text in
            let count = text.count
            // Lines are at most one more than the bytes that may end one.
            var breaks = 0
            for byte in text where byte <= 0x1E || byte == 0x85 || byte == 0xA8 || byte == 0xA9 { breaks += 1 }
            lines.reserveCapacity(tokens: breaks + 1, bytes: count)
            var start = 0, position = 0
            while position < count {
                let byte = text[position]
                var separator = 0
                switch byte {
                case 0x0D: separator = position + 1 < count && text[position + 1] == 0x0A ? 2 : 1
                case 0x0A, 0x0B, 0x0C, 0x1C, 0x1D, 0x1E: separator = 1
                case 0xC2: separator = position + 1 < count && text[position + 1] == 0x85 ? 2 : 0
                case 0xE2:
                    separator = position + 2 < count && text[position + 1] == 0x80
                        && (text[position + 2] == 0xA8 || text[position + 2] == 0xA9) ? 3 : 0
                default: break
                }
                if separator > 0 {
                    lines.append(utf8: UnsafeBufferPointer(rebasing: text[start ..< position]))
                    position += separator
                    start = position
                } else {
                    position += 1
                }
            }
            if start < count { lines.append(utf8: UnsafeBufferPointer(rebasing: text[start ..< count])) }
        }
        var kept = lines.count
        while kept > 0 && lines.byteCount(at: kept - 1) == 0 { kept -= 1 }
        if kept < lines.count { lines.removeLast(lines.count - kept) }
        return lines
    }

    /// The tokens (ids from 2) of a vocabulary as Keras's `set_vocabulary` takes it: without
    /// its first two entries when they are the mask and out-of-vocabulary tokens (`""`,
    /// `[UNK]`), as `get_vocabulary()` returns them; otherwise every entry is a token.
    static func tokens(fromVocabulary entries: [String]) -> [String] {
        if entries.count >= 2, entries[0].utf8.isEmpty, entries[1].utf8.elementsEqual("[UNK]".utf8) {
            return Array(entries.dropFirst(2))
        }
        return entries
    }

    /// The same for a vocabulary file's lines, which stay in their buffer.
    static func tokens(fromVocabulary entries: TokenList) -> TokenList {
        if entries.count >= 2, entries.byteCount(at: 0) == 0,
           entries.withBytes(at: 1, { $0.elementsEqual("[UNK]".utf8) }) {
            var tokens = entries
            tokens.removeFirst(2)
            return tokens
        }
        return entries
    }
}

/// A `.keras` archive's assets: files a layer saves besides its weights.
protocol KerasAssets {
    /// The vocabulary file Keras loads for the TextVectorization `node`: the member's name
    /// and bytes, or nil when the archive has none.
    func vocabularyFile(of node: KerasConfig.Node) throws -> (member: String, bytes: [UInt8])?
}

/// Assets in a `.keras` archive, under `assets/` + the layer's path, which is named as its
/// weights group is (`layers/text_vectorization`: `Keras3Weights.groupPaths`).
struct KerasArchiveAssets: KerasAssets {
    let archive: KerasArchive
    /// Layer name → its path.
    let paths: [String: String]

    init(archive: KerasArchive, layers: [KerasConfig.Node]) {
        self.archive = archive
        let keys = Keras3Weights.groupPaths(layers.map { ($0.className, $0.name) })
        paths = Dictionary(zip(layers.map(\.name), keys).compactMap { name, key in key.map { (name, $0) } },
                           uniquingKeysWith: { first, _ in first })
    }

    /// Keras 3.15 writes the vocabulary twice, for the layer (`assets/<path>/vocabulary.txt`)
    /// and for its lookup sublayer (`assets/<path>/_lookup_layer/vocabulary.txt`), and loads
    /// both, the sublayer's last. Either alone is taken; two that differ are refused.
    func vocabularyFile(of node: KerasConfig.Node) throws -> (member: String, bytes: [UInt8])? {
        guard let path = paths[node.name] else { return nil }
        let names = ["assets/\(path)/_lookup_layer/vocabulary.txt", "assets/\(path)/vocabulary.txt"]
        var found: [(member: String, bytes: [UInt8])] = []
        for name in names {
            if let bytes = try archive.member(name, limit: Limits.vocabularyBytes) { found.append((name, bytes)) }
        }
        if found.count == 2, found[0].bytes != found[1].bytes {
            throw ModelError(file: archive.path, path: found[1].member,
                             layer: "\(escapedForDisplay(node.name)) (\(escapedForDisplay(node.className)))",
                             message: "differs from \(escapedForDisplay(found[0].member)); the archive's two copies of the vocabulary disagree, so it is refused")
        }
        return found.first
    }
}
