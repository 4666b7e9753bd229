// A model's text front: raw strings to the token ids its embedding takes, as data.

import TextSafety

/// Turns texts into token ids `[batch, time]` for a model's first layer, an embedding: what
/// Keras's `TextVectorization(output_mode="int")` computes, with the settings as data.
///
/// Each text goes through four steps, all on its UTF-8 bytes:
/// 1. `lowercase`: the ASCII capitals `A`–`Z` become `a`–`z`, and nothing else changes
///    (Keras calls `tf.strings.lower` without an encoding, which is ASCII-only: `É`, `Ü`,
///    `Σ` and the Kelvin sign stay as they are).
/// 2. `stripPunctuation`: the 32 ASCII punctuation characters
///    ``!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~`` are removed (Keras's regular expression); other
///    punctuation (`¡`, `«`, `“`, `—`, full-width `！`) stays.
/// 3. `split`: `.whitespace` splits at runs of the ASCII whitespace ` \t\n\v\f\r` and drops
///    empty tokens (`tf.strings.split`), so no-break, em and ideographic spaces and the
///    separators `\u{1c}`–`\u{1f}`, `\u{85}`, `\u{2028}` are part of tokens; `.none` keeps
///    the whole text as one token.
/// 4. Lookup by bytes, not by Unicode equivalence (`é` and `e` + combining acute are different
///    tokens, as in TensorFlow's hash table): the mask token (`""`) is id 0, a vocabulary token
///    its index, anything else the out-of-vocabulary id 1.
///
/// Rows are then cut or padded with 0 to `outputSequenceLength` steps; without one, padded to
/// the longest row in the batch (a batch whose texts have no tokens has 0 steps).
package struct TextVectorizer: Sendable, Equatable {
    /// How a standardized text becomes tokens.
    package enum Split: String, Sendable, Hashable, Codable {
        /// Runs of ASCII whitespace separate tokens; empty tokens are dropped.
        case whitespace
        /// The whole text is one token.
        case none
    }

    /// The source's name for the vectorizer (a Keras layer name), or empty.
    package var name: String
    package var lowercase: Bool
    package var stripPunctuation: Bool
    package var split: Split
    /// Steps per row, or nil to pad to the batch's longest row.
    package var outputSequenceLength: Int?
    /// Keras's `max_tokens`: a bound the vocabulary (with the mask and out-of-vocabulary ids)
    /// was checked against, or nil. It changes no id; it is kept so that a conversion writes
    /// the setting back.
    package var maxTokens: Int?
    /// Id 0's token and id 1's.
    private var maskToken: String
    private var oovToken: String
    /// The vocabulary's own tokens, ids from ``firstTokenIndex``, in one buffer (a vocabulary
    /// file holds up to 2^24 tokens: their bytes and 4 more each, not a `String` and a
    /// dictionary entry each).
    package private(set) var tokens: TokenList
    /// Token bytes → position in ``tokens``.
    private var index: TokenIndex

    /// The id of the mask token, which is also the padding id.
    package static let maskIndex = 0
    /// The id every token outside the vocabulary gets.
    package static let oovIndex = 1
    package static let firstTokenIndex = 2

    /// - Parameters:
    ///   - tokens: the vocabulary's tokens, ids from 2 in order (without the mask and
    ///     out-of-vocabulary tokens).
    ///   - maskToken: id 0's token (Keras: `""`); a text token equal to it gets id 0.
    ///   - oovToken: id 1's token, for display (Keras: `[UNK]`).
    /// - Throws: `EngineError` for a token that appears twice (byte for byte) or equals the
    ///   mask token, as Keras refuses such a vocabulary.
    package init(name: String = "", lowercase: Bool, stripPunctuation: Bool, split: Split, tokens: [String],
                 maskToken: String = "", oovToken: String = "[UNK]", outputSequenceLength: Int? = nil,
                 maxTokens: Int? = nil) throws {
        try self.init(name: name, lowercase: lowercase, stripPunctuation: stripPunctuation, split: split,
                      tokens: TokenList(tokens), maskToken: maskToken, oovToken: oovToken,
                      outputSequenceLength: outputSequenceLength, maxTokens: maxTokens)
    }

    /// The same from tokens already in a ``TokenList`` (a vocabulary file's lines), which is
    /// kept as it is: no string is made per token.
    package init(name: String = "", lowercase: Bool, stripPunctuation: Bool, split: Split, tokens: TokenList,
                 maskToken: String = "", oovToken: String = "[UNK]", outputSequenceLength: Int? = nil,
                 maxTokens: Int? = nil) throws {
        self.name = name
        self.lowercase = lowercase
        self.stripPunctuation = stripPunctuation
        self.split = split
        self.outputSequenceLength = outputSequenceLength
        self.maxTokens = maxTokens
        self.maskToken = maskToken
        self.oovToken = oovToken
        self.tokens = tokens
        // The first entry that is the mask token or repeats an earlier one is refused.
        func maskProblem(at position: Int) -> EngineError {
            EngineError(layerKind: "text vectorizer", message: "vocabulary entry \(Self.firstTokenIndex + position) is the mask token '\(escapedForDisplay(maskToken))', which only id \(Self.maskIndex) may be")
        }
        do {
            index = try TokenIndex(tokens)
        } catch {
            // A mask token before the repeat is the first problem (a repeated mask token too).
            if let position = tokens[..<error.second].indices.first(where: { tokens.withBytes(at: $0) { $0.elementsEqual(maskToken.utf8) } }) {
                throw maskProblem(at: position)
            }
            throw EngineError(layerKind: "text vectorizer", message: "vocabulary entries \(Self.firstTokenIndex + error.first) and \(Self.firstTokenIndex + error.second) are the same token '\(escapedForDisplay(tokens[error.second]))'")
        }
        if let position = Array(maskToken.utf8).withUnsafeBufferPointer({ index.position(of: $0, in: tokens) }) {
            throw maskProblem(at: position)
        }
    }

    /// Ids in all, the mask and out-of-vocabulary ids included: the embedding needs at least
    /// this many rows.
    package var vocabularySize: Int { Self.firstTokenIndex + tokens.count }

    /// The token of every id: the mask token at ``maskIndex``, the out-of-vocabulary token at
    /// ``oovIndex``, then the vocabulary's own tokens (``tokens``) from ``firstTokenIndex``.
    package var vocabulary: Vocabulary { Vocabulary(maskToken: maskToken, oovToken: oovToken, tokens: tokens) }

    /// The token of every id, each decoded when read.
    package struct Vocabulary: RandomAccessCollection, Sendable {
        fileprivate var maskToken: String
        fileprivate var oovToken: String
        fileprivate var tokens: TokenList

        package var startIndex: Int { 0 }
        package var endIndex: Int { TextVectorizer.firstTokenIndex + tokens.count }
        package subscript(id: Int) -> String {
            switch id {
            case TextVectorizer.maskIndex: return maskToken
            case TextVectorizer.oovIndex: return oovToken
            default: return tokens[id - TextVectorizer.firstTokenIndex]
            }
        }
    }

    package static func == (lhs: TextVectorizer, rhs: TextVectorizer) -> Bool {
        lhs.name == rhs.name && lhs.lowercase == rhs.lowercase && lhs.stripPunctuation == rhs.stripPunctuation
            && lhs.split == rhs.split && lhs.outputSequenceLength == rhs.outputSequenceLength
            && lhs.maxTokens == rhs.maxTokens && lhs.maskToken.utf8.elementsEqual(rhs.maskToken.utf8)
            && lhs.oovToken.utf8.elementsEqual(rhs.oovToken.utf8) && lhs.tokens == rhs.tokens
    }

    /// A text's tokens after standardizing and splitting, before lookup.
    package func tokens(of text: String) -> [String] {
        tokenBytes(of: text).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A text's token ids, unpadded.
    package func ids(of text: String) -> [Int] {
        tokenBytes(of: text).map(id)
    }

    /// Token ids for `texts`, row-major `[texts.count, time]`, padded with 0 or cut to
    /// `outputSequenceLength` steps (without one, padded to the longest row).
    ///
    /// - Throws: `EngineError` when `texts.count × time` would exceed `maxElements`, before
    ///   the padded ids are allocated.
    package func tokenIDs(_ texts: [String], maxElements: Int) throws -> (ids: [Int], time: Int) {
        var rows: [[Int]] = []
        rows.reserveCapacity(texts.count)
        for text in texts {
            var row = ids(of: text)
            if let length = outputSequenceLength, row.count > length { row.removeLast(row.count - length) }
            rows.append(row)
        }
        let time = outputSequenceLength ?? rows.map(\.count).max() ?? 0
        guard let count = elementCount([texts.count, time]), count <= maxElements else {
            throw EngineError(layerKind: "text vectorizer", message: "\(texts.count) texts of \(time) tokens: batch × time = \(elementCount([texts.count, time]).map(String.init) ?? "more than \(Int.max)") token ids, over the limit of \(maxElements)")
        }
        var result = [Int](repeating: Self.maskIndex, count: count)
        for (b, row) in rows.enumerated() {
            result.replaceSubrange(b * time ..< b * time + row.count, with: row)
        }
        return (result, time)
    }

    private func id(_ token: [UInt8]) -> Int {
        if token.elementsEqual(maskToken.utf8) { return Self.maskIndex }
        return token.withUnsafeBufferPointer { index.position(of: $0, in: tokens) }.map { Self.firstTokenIndex + $0 }
            ?? Self.oovIndex
    }

    /// Standardizes and splits one text's UTF-8 bytes. Only ASCII bytes change or separate,
    /// and in UTF-8 those never occur inside a multi-byte character, so every token is valid
    /// UTF-8 when the text is.
    private func tokenBytes(of text: String) -> [[UInt8]] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if stripPunctuation && Self.isASCIIPunctuation(byte) { continue }
            bytes.append(lowercase && (0x41...0x5A).contains(byte) ? byte | 0x20 : byte)
        }
        switch split {
        case .none:
            return [bytes]
        case .whitespace:
            return bytes.split(omittingEmptySubsequences: true, whereSeparator: Self.isASCIIWhitespace).map(Array.init)
        }
    }

    /// Python's `string.punctuation`: `!` to `/`, `:` to `@`, `[` to `` ` ``, `{` to `~`.
    package static func isASCIIPunctuation(_ byte: UInt8) -> Bool {
        (0x21...0x2F).contains(byte) || (0x3A...0x40).contains(byte) || (0x5B...0x60).contains(byte)
            || (0x7B...0x7E).contains(byte)
    }

    /// Space, tab, newline, vertical tab, form feed, carriage return.
    package static func isASCIIWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || (0x09...0x0D).contains(byte)
    }
}

extension TextVectorizer {
    /// `text vectorizer 'name'` for messages, the name escaped.
    var displayName: String {
        name.isEmpty ? "text vectorizer" : "text vectorizer '\(escapedForDisplay(name))'"
    }
}

extension ModelInput {
    /// What the input is, with its shape, for messages: `token ids [2, 6]`,
    /// `float features [2, 6, 4]`, `texts ([3] strings)`.
    package var kindDescription: String {
        switch self {
        case .features(let tensor): return "float features \(shapeString(tensor.shape))"
        case .tokens(_, let batch, let time): return "token ids [\(batch), \(time)]"
        case .texts(let texts): return "texts ([\(texts.count)] strings)"
        }
    }
}

// MARK: - Keras's names for the rules

extension TextVectorizer {
    /// Keras's `standardize` names and the rules each selects: the one table every reader and
    /// writer of these names uses (Keras configs, a `model_config`'s `TextVectorization`, the
    /// emitted tokenizer). Keras's None, no standardization, is nil where a name is optional
    /// (a `model_config` writes it `none`).
    package static let standardizations: [(name: String, lowercase: Bool, stripPunctuation: Bool)] = [
        ("lower_and_strip_punctuation", true, true), ("lower", true, false), ("strip_punctuation", false, true),
    ]

    /// Keras's `standardize` when a config leaves it out.
    package static let defaultStandardizeName = "lower_and_strip_punctuation"

    /// The rules Keras's `standardize` `name` selects; nil for a name that is none of Keras's.
    package static func standardization(named name: String) -> (lowercase: Bool, stripPunctuation: Bool)? {
        standardizations.first { $0.name == name }.map { ($0.lowercase, $0.stripPunctuation) }
    }

    /// Keras's `standardize` for the vectorizer's rules (`lower_and_strip_punctuation`,
    /// `lower`, `strip_punctuation`), nil for None.
    package var standardizeName: String? {
        Self.standardizations.first { $0.lowercase == lowercase && $0.stripPunctuation == stripPunctuation }?.name
    }

    /// Keras's `split` (`whitespace`, also its default: `Split.whitespace`'s raw value), nil for None.
    package var splitName: String? { split == .whitespace ? Split.whitespace.rawValue : nil }
}
