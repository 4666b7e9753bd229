import Foundation
import HDF5
import XCTest
import TestSupport
import TextSafety
@testable import RecurrentKit

/// Keras's TextVectorization: its standardization, split and lookup against what real Keras
/// computed (tables the fixture generators record), its settings refused by name, texts as
/// the only input of a text model, and `/texts` read within bounds.
final class TextVectorizationTests: XCTestCase {
    // MARK: Standardization against Keras

    /// Every standardize × split setting on every recorded string gives Keras's tokens and
    /// ids, for the tables both tf-keras and Keras 3 wrote.
    func testStandardizationSplitAndLookupMatchKeras() throws {
        for (table, generator) in [("k3_text_standardization.json", "keras 3."), ("tfk_text_standardization.json", "tf-keras 2.")] {
            let data = try Data(contentsOf: URL(fileURLWithPath: fixture("keras/\(table)")))
            let root = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any], table)
            XCTAssertTrue((root["generator"] as? String)?.hasPrefix(generator) ?? false, table)
            let vocabulary = try XCTUnwrap(root["vocabulary"] as? [String], table)
            let cases = try XCTUnwrap(root["cases"] as? [[String: Any]], table)
            // 4 standardize modes × 2 splits × every string: a table that lost cases fails.
            let strings = Set(cases.compactMap { $0["text"] as? String })
            XCTAssertGreaterThanOrEqual(strings.count, 20, table)
            XCTAssertEqual(cases.count, 8 * strings.count, table)
            var settings = Set<String>()
            for item in cases {
                let standardize = item["standardize"] as? String
                let split = item["split"] as? String
                let text = try XCTUnwrap(item["text"] as? String)
                settings.insert("\(standardize ?? "None")/\(split ?? "None")")
                let vectorizer = try TextVectorizer(
                    lowercase: standardize == "lower" || standardize == "lower_and_strip_punctuation",
                    stripPunctuation: standardize == "strip_punctuation" || standardize == "lower_and_strip_punctuation",
                    split: split == "whitespace" ? .whitespace : .none, tokens: vocabulary)
                let label = "\(table) \(standardize ?? "None")/\(split ?? "None") \(escapedForDisplay(text))"
                // Compared as bytes: Swift's String == would call é and e + ◌́ equal.
                let tokens = try XCTUnwrap(item["tokens"] as? [String])
                XCTAssertEqual(vectorizer.tokens(of: text).map { Array($0.utf8) }, tokens.map { Array($0.utf8) }, label)
                XCTAssertEqual(vectorizer.ids(of: text), try XCTUnwrap(item["ids"] as? [Int]), label)
                let padded = try vectorizer.tokenIDs([text], maxElements: 1 << 20)
                XCTAssertEqual(padded.ids, vectorizer.ids(of: text), label)
            }
            XCTAssertEqual(settings.count, 8, table)
        }
    }

    /// The tables really hold the cases the rules turn on (a regenerated table that lost
    /// them fails here, not silently).
    func testStandardizationTablesCoverTheRules() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixture("keras/k3_text_standardization.json")))
        let cases = try XCTUnwrap((JSONSerialization.jsonObject(with: data) as? [String: Any])?["cases"] as? [[String: Any]])
        let texts = Set(cases.compactMap { $0["text"] as? String })
        func has(_ fragment: String) -> Bool { texts.contains { $0.unicodeScalars.contains { fragment.unicodeScalars.contains($0) } } }
        XCTAssertTrue(has("É"), "a capital with an accent (left alone by ASCII lowercasing)")
        XCTAssertTrue(has("\u{212A}"), "the Kelvin sign")
        XCTAssertTrue(has("\u{00A0}") && has("\u{3000}") && has("\u{85}"), "non-ASCII spaces")
        XCTAssertTrue(has("\t") && has("\n") && has("\r") && has("\u{0B}") && has("\u{0C}"), "ASCII whitespace")
        XCTAssertTrue(has("😀"), "emoji")
        XCTAssertTrue(has("\u{301}"), "a combining accent")
        XCTAssertTrue(texts.contains(""), "the empty string")
        let punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".unicodeScalars
        XCTAssertEqual(punctuation.count, 32)
        XCTAssertTrue(texts.contains { text in punctuation.allSatisfy { text.unicodeScalars.contains($0) } }, "all ASCII punctuation")
        // Keras lowercased only ASCII, and split only at ASCII whitespace.
        let lower = cases.filter { $0["standardize"] as? String == "lower" && $0["split"] is NSNull }
        XCTAssertTrue(lower.contains { ($0["tokens"] as? [String])?.first?.contains("ÀÉÎÕÜ") ?? false })
        let split = cases.filter { $0["standardize"] is NSNull && $0["split"] as? String == "whitespace" }
        XCTAssertTrue(split.contains { ($0["tokens"] as? [String])?.contains { $0.contains("\u{00A0}") } ?? false })
    }

    func testVocabularyFileLinesAreReadAsKerasReloadsThem() {
        XCTAssertEqual(KerasTextVectorization.vocabularyLines(Array("\n[UNK]\nthe\ncafé".utf8)), ["", "[UNK]", "the", "café"])
        // Universal newlines and str.splitlines(): \r\n, \r, \v, \f, \x1c, \x85, \u2028 all end a line.
        XCTAssertEqual(KerasTextVectorization.vocabularyLines(Array("a\r\nb\rc\u{0B}d\u{0C}e\u{1C}f\u{85}g\u{2028}h\n\n".utf8)),
                       ["a", "b", "c", "d", "e", "f", "g", "h"])
        XCTAssertEqual(KerasTextVectorization.vocabularyLines([]), [])
        XCTAssertNil(KerasTextVectorization.vocabularyLines([0x61, 0xFF, 0x62]))
        XCTAssertEqual(KerasTextVectorization.tokens(fromVocabulary: ["", "[UNK]", "a"]), ["a"])
        XCTAssertEqual(KerasTextVectorization.tokens(fromVocabulary: ["a", "[UNK]"]), ["a", "[UNK]"])
    }

    func testVectorizerPadsCutsAndRefusesBadVocabularies() throws {
        let vectorizer = try TextVectorizer(lowercase: true, stripPunctuation: true, split: .whitespace,
                                            tokens: ["a", "b"], outputSequenceLength: 3)
        let (ids, time) = try vectorizer.tokenIDs(["A b c a b", "", "b!"], maxElements: 100)
        XCTAssertEqual(time, 3)
        XCTAssertEqual(ids, [2, 3, 1, 0, 0, 0, 3, 0, 0])
        let open = try TextVectorizer(lowercase: false, stripPunctuation: false, split: .whitespace, tokens: ["a"])
        XCTAssertEqual(try open.tokenIDs(["", " \t"], maxElements: 100).time, 0)
        XCTAssertThrowsError(try open.tokenIDs([String](repeating: "a a a", count: 10), maxElements: 29))
        XCTAssertThrowsError(try TextVectorizer(lowercase: false, stripPunctuation: false, split: .none, tokens: ["a", "a"]))
        XCTAssertThrowsError(try TextVectorizer(lowercase: false, stripPunctuation: false, split: .none, tokens: ["a", ""]))
        // Distinct bytes, equal as Swift strings: both are tokens, as in Keras.
        let accents = try TextVectorizer(lowercase: false, stripPunctuation: false, split: .none, tokens: ["é", "e\u{301}"])
        XCTAssertEqual(accents.ids(of: "e\u{301}"), [3])
        XCTAssertEqual(accents.ids(of: "é"), [2])
    }

    // MARK: Texts in, and only for text models

    func testTextModelsTakeTextsAndNothingElse() throws {
        let text = try LoadedModel(contentsOf: fixture("keras/k3_text_lesson.keras"))
        XCTAssertTrue(text.takesTexts)
        XCTAssertNoThrow(try text.run(.texts(["a great film", ""])))
        for input in [ModelInput.tokens(ids: [2, 3], batch: 1, time: 2),
                      .features(Tensor(unchecked: [1, 2, 4], values: Array(repeating: 0, count: 8)))] {
            XCTAssertThrowsError(try text.run(input)) { error in
                let line = "\(error)"
                XCTAssertTrue(line.contains("text vectorizer 'text_vectorization'") && line.contains("takes texts"), line)
                XCTAssertFalse(line.contains("\n"), line)
            }
        }
        XCTAssertThrowsError(try text.makeStream(batch: 1)) { error in
            XCTAssertTrue("\(error)".contains("cannot stream texts"), "\(error)")
        }
        let tokens = try LoadedModel(contentsOf: fixture("keras/tfk_text_bilstm.h5"))
        XCTAssertFalse(tokens.takesTexts)
        XCTAssertThrowsError(try tokens.run(.texts(["a"]))) { error in
            let line = "\(error)"
            XCTAssertTrue(line.contains("embedding (Embedding)") && line.contains("only a model with a text vectorizer takes texts"), line)
        }
    }

    func testInspectShowsTheVectorizer() throws {
        let text = try rnnkit("inspect", fixture("keras/k3_text_lesson.keras"))
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("input:      texts [batch]"), text.stdout)
        XCTAssertTrue(text.stdout.contains("text_vectorization (TextVectorization): standardize=lower_and_strip_punctuation split=whitespace output_mode=int max_tokens=24"), text.stdout)
        XCTAssertTrue(text.stdout.contains("vocabulary_size=24 vocabulary=assets/layers/text_vectorization/_lookup_layer/vocabulary.txt"), text.stdout)
        let json = try rnnkit("inspect", "--json", fixture("keras/tfk_text_whole.h5"))
        XCTAssertEqual(json.status, 0, json.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["input"] as? String, "texts [batch]")
        let layer = try XCTUnwrap((report["layers"] as? [[String: Any]])?.first { $0["type"] as? String == "TextVectorization" })
        XCTAssertEqual(layer["standardize"] as? String, "lower")
        XCTAssertEqual(layer["split"] as? String, "None")
        XCTAssertEqual(layer["output_sequence_length"] as? Int, 3)
        XCTAssertEqual(layer["vocabulary_size"] as? Int, 7)
        XCTAssertEqual(layer["vocabulary"] as? String, "config")
    }

    // MARK: Conversion

    /// The fixtures whose models start with a TextVectorization, each of them.
    static let textModels = ["tfk_text_lesson", "k3_text_lesson", "tfk_text_vocab", "k3_text_vocab", "k3h5_text_vocab",
                             "tfk_text_whole", "k3_text_whole"]

    /// Every text model converts to every target and container (`rnnkit convert`, exit 0),
    /// keeps its vectorizer (settings and vocabulary, as read back) and computes the real
    /// framework's output from the fixture's raw texts; the PyTorch files convert on to
    /// tf-keras and Keras 3 and still do.
    func testConvertKeepsTheVectorizer() throws {
        let folder = try temporaryFolder(self)
        // The list is every committed fixture tagged text-vectorization, no more, no fewer.
        let keras = fixturesFolder.appendingPathComponent("keras")
        let tagged = try FileManager.default.contentsOfDirectory(atPath: keras.path).filter { $0.hasSuffix(".fixture.h5") }
            .filter { try Fixture(contentsOf: keras.appendingPathComponent($0).path).exercises.contains("text-vectorization") }
            .map { String($0.dropLast(".fixture.h5".count)) }
        XCTAssertEqual(Set(tagged), Set(Self.textModels))
        var checked = 0
        for name in Self.textModels {
            let fixtureData = try Fixture(contentsOf: fixture("keras/\(name).fixture.h5"))
            XCTAssertTrue(fixtureData.exercises.contains("text-vectorization"), name)
            guard case .texts(let texts) = fixtureData.input else { return XCTFail("\(name): texts expected") }
            let source = try LoadedModel(contentsOf: try XCTUnwrap(fixtureData.modelPath))
            let vectorizer = try XCTUnwrap(source.model.textVectorizer, name)
            let expected = try XCTUnwrap(fixtureData.expected.first { $0.name == "output" }?.tensor)
            func assertKeeps(_ path: String, _ label: String) throws {
                let converted = try LoadedModel(contentsOf: path)
                let kept = try XCTUnwrap(converted.model.textVectorizer, "\(label): no vectorizer")
                XCTAssertEqual(kept.vocabulary.map { Array($0.utf8) }, vectorizer.vocabulary.map { Array($0.utf8) }, label)
                XCTAssertEqual([kept.lowercase, kept.stripPunctuation], [vectorizer.lowercase, vectorizer.stripPunctuation], label)
                XCTAssertEqual(kept.split, vectorizer.split, label)
                XCTAssertEqual(kept.outputSequenceLength, vectorizer.outputSequenceLength, label)
                XCTAssertEqual(kept.maxTokens, vectorizer.maxTokens, label)
                let actual = try converted.run(.texts(texts)).output
                let comparison = Comparison(name: label, actual: actual, expected: expected, atol: 1e-5, rtol: 1e-4)
                XCTAssertTrue(comparison.passed, "\(label): max abs error \(comparison.maxAbsoluteError), shapes \(actual.shape) vs \(expected.shape)")
                checked += 1
            }
            for (target, ext) in [("pytorch", "pt"), ("pytorch", "safetensors"), ("pytorch", "h5"), ("keras", "h5"), ("keras3", "keras")] {
                let out = folder.appendingPathComponent("\(name).\(target).\(ext)").path
                let result = try rnnkit("convert", try XCTUnwrap(fixtureData.modelPath), out, "--to", target)
                XCTAssertEqual(result.status, 0, "\(name) → \(target) .\(ext): \(result.stderr)")
                try assertKeeps(out, "\(name) → \(target) .\(ext)")
                guard target == "pytorch" else { continue }
                for (back, backExt) in [("keras", "h5"), ("keras3", "keras")] {
                    let backOut = out + ".back.\(backExt)"
                    let again = try rnnkit("convert", out, backOut, "--to", back)
                    XCTAssertEqual(again.status, 0, "\(name) → .\(ext) → \(back): \(again.stderr)")
                    XCTAssertEqual(again.stdout.contains("note"), false, "no padding note for a text model: \(again.stdout)")
                    try assertKeeps(backOut, "\(name) → .\(ext) → \(back)")
                }
            }
        }
        XCTAssertEqual(checked, Self.textModels.count * 11)
    }

    /// The `model_config` written for a text model holds the vectorizer as a version-3
    /// `TextVectorization` module in front of the Embedding, every setting written.
    func testModelConfigHoldsTheVectorizer() throws {
        let out = try temporaryFolder(self).appendingPathComponent("vocab.h5").path
        _ = try Converter.convert(fixture("keras/tfk_text_vocab.h5"), to: .pytorch, output: out)
        let json = try XCTUnwrap(try HDF5File.open(out).root.attribute("model_config")?.stringValue)
        let document = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(document["version"] as? Int, 3)
        let modules = try XCTUnwrap(document["modules"] as? [[String: Any]])
        XCTAssertEqual(modules.map { $0["type"] as? String }, ["TextVectorization", "Embedding", "LSTM", "Linear", "Softmax"])
        let text = modules[0]
        XCTAssertEqual(text["standardize"] as? String, "strip_punctuation")
        XCTAssertEqual(text["split"] as? String, "whitespace")
        XCTAssertEqual(text["output_sequence_length"] as? Int, 6)
        XCTAssertNil(text["max_tokens"])
        XCTAssertEqual(text["name"] as? String, "text_vectorization")
        let vocabulary = try XCTUnwrap(text["vocabulary"] as? [String])
        XCTAssertEqual(vocabulary.count, 18)
        XCTAssertEqual(Array(vocabulary.prefix(2)), ["the", "The"])
    }

    /// The read-back check compares the vectorizer: a model that differs from the source only
    /// in one setting or one token's bytes has another fingerprint.
    func testFingerprintComparesTheVectorizer() throws {
        let model = try LoadedModel(contentsOf: fixture("keras/tfk_text_vocab.h5")).model
        let vectorizer = try XCTUnwrap(model.textVectorizer)
        let base = ModelFingerprint(model)
        func variant(_ change: (inout TextVectorizer) throws -> Void) rethrows -> ModelFingerprint {
            var other = model
            var changed = vectorizer
            try change(&changed)
            other.textVectorizer = changed
            return ModelFingerprint(other)
        }
        XCTAssertEqual(try variant { $0.name = "renamed" }, base, "the name is not compared")
        var tokens = Array(vectorizer.tokens)
        tokens[3] = tokens[3] + " "
        let variants: [(String, ModelFingerprint)] = [
            ("lowercase", variant { $0.lowercase.toggle() }),
            ("strip punctuation", variant { $0.stripPunctuation.toggle() }),
            ("split", variant { $0.split = .none }),
            ("output_sequence_length", variant { $0.outputSequenceLength = 7 }),
            ("max_tokens", variant { $0.maxTokens = 100 }),
            ("a token's bytes", try variant {
                $0 = try TextVectorizer(name: $0.name, lowercase: $0.lowercase, stripPunctuation: $0.stripPunctuation,
                                        split: $0.split, tokens: tokens, outputSequenceLength: $0.outputSequenceLength)
            }),
        ]
        for (label, fingerprint) in variants {
            XCTAssertNotEqual(fingerprint, base, label)
            XCTAssertTrue(base.firstDifference(from: fingerprint).contains("text vectorizers differ"), label)
        }
        var bare = model
        bare.textVectorizer = nil
        XCTAssertNotEqual(ModelFingerprint(bare), base, "a model without its vectorizer")
    }

    /// A vocabulary that makes the target's config larger than any reader takes
    /// (`Limits.configJSONItems`) is refused before anything is written, naming the layer;
    /// the PyTorch source itself, just under the bound, reads and converts to PyTorch.
    func testVocabularyBeyondTheConfigLimitsIsRefused() throws {
        let folder = try temporaryFolder(self)
        func document(_ count: Int) throws -> String {
            let object: [String: Any] = ["format": "recurrentkit.pytorch", "version": 3, "modules": [
                ["type": "TextVectorization", "name": "tv", "vocabulary": (0..<count).map { "t\($0)" }],
                ["type": "Embedding", "name": "embedding", "num_embeddings": count + 2, "embedding_dim": 1],
            ]]
            return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        }
        let overhead = Limits.jsonItems(in: try document(1)) - 1
        let count = Limits.configJSONItems - overhead - 2
        let json = try document(count)
        XCTAssertLessThanOrEqual(Limits.jsonItems(in: json), Limits.configJSONItems)
        let source = folder.appendingPathComponent("source.h5").path
        do {  // closed before rnnkit opens it
            let root = try HDF5File.create(source).root
            try root.write("embedding.weight", floats: [Float](repeating: 0, count: count + 2), shape: [count + 2, 1])
            try root.setAttribute("model_config", .string(json))
        }
        XCTAssertEqual(try LoadedModel(contentsOf: source).model.textVectorizer?.vocabularySize, count + 2)
        for (target, ext) in [("keras", "h5"), ("keras3", "keras")] {
            let out = folder.appendingPathComponent("big.\(ext)").path
            let result = try rnnkit("convert", source, out, "--to", target)
            XCTAssertEqual(result.status, 2, "\(target): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("layer tv (TextVectorization): cannot be converted to \(target): the written config holds more than \(Limits.configJSONItems) JSON keys and values (Limits.configJSONItems)"), result.stderr)
            XCTAssertTrue(result.stderr.contains("with the vocabulary's \(count) tokens in it; nothing was written"), result.stderr)
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), target)
        }
    }

    /// A token that starts with U+FEFF (a byte order mark) is a token like any other: read
    /// from a `model_config` and from the one rnnkit writes (Foundation's JSON parser dropped
    /// a leading U+FEFF from every string, so the read-back differed and the conversion was
    /// refused), kept byte for byte through every target.
    func testTokensStartingWithAByteOrderMarkAreKept() throws {
        let folder = try temporaryFolder(self)
        let vocabulary = ["\u{FEFF}the", "\u{FEFF}\u{FEFF}", "a\u{FEFF}", "\u{FEFF}", "cat"]
        let object: [String: Any] = ["format": "recurrentkit.pytorch", "version": 3, "modules": [
            ["type": "TextVectorization", "name": "tv", "vocabulary": vocabulary],
            ["type": "Embedding", "name": "embedding", "num_embeddings": vocabulary.count + 2, "embedding_dim": 2],
        ]]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        XCTAssertTrue(json.contains("\u{FEFF}the"), "written raw, as rnnkit's own writer writes it")
        let source = folder.appendingPathComponent("source.h5").path
        do {  // closed before rnnkit opens it
            let root = try HDF5File.create(source).root
            try root.write("embedding.weight", floats: (0..<(2 * vocabulary.count + 4)).map { Float($0) / 10 },
                           shape: [vocabulary.count + 2, 2])
            try root.setAttribute("model_config", .string(json))
        }
        func bytes(_ tokens: [String]?) -> [[UInt8]]? { tokens.map { $0.map { Array($0.utf8) } } }
        let read = try XCTUnwrap(try LoadedModel(contentsOf: source).model.textVectorizer)
        // The two reserved ids (padding, out of vocabulary) come first.
        let ids = ["", "[UNK]"] + vocabulary
        XCTAssertEqual(bytes(Array(read.vocabulary)), bytes(ids))
        for (target, ext) in [("pytorch", "pt"), ("pytorch", "safetensors"), ("pytorch", "h5"), ("keras3", "keras")] {
            let out = folder.appendingPathComponent("out.\(target).\(ext)").path
            let result = try rnnkit("convert", source, out, "--to", target)
            XCTAssertEqual(result.status, 0, "\(target) .\(ext): \(result.stderr)")
            let kept = try LoadedModel(contentsOf: out).model.textVectorizer
            XCTAssertEqual(bytes(kept.map { Array($0.vocabulary) }), bytes(ids), "\(target) .\(ext)")
        }
        // The one JSON front end keeps it in keys and values, escaped or raw; a BOM before the
        // document is still skipped.
        let parsed = try StrictJSONDecoder.parse(Data("\u{FEFF}{\"\u{FEFF}k\": [\"\u{FEFF}\u{FEFF}v\", \"\\ufeffw\", \"\\\"\u{FEFF}\"]}".utf8))
        let dictionary = try XCTUnwrap(parsed as? [String: [String]])
        XCTAssertEqual(dictionary.keys.map { Array($0.utf8) }, [Array("\u{FEFF}k".utf8)])
        XCTAssertEqual(bytes(dictionary.values.first), bytes(["\u{FEFF}\u{FEFF}v", "\u{FEFF}w", "\"\u{FEFF}"]))
    }

    /// A `TextVectorization` module is refused where it cannot be the model's text front,
    /// naming the module, in one line.
    func testModelConfigVectorizerMisplacedIsRefused() throws {
        let folder = try temporaryFolder(self)
        var written = 0
        func write(_ modules: [[String: Any]], rows: Int = 4) throws -> String {
            written += 1
            let path = folder.appendingPathComponent("m\(written).h5").path
            let root = try HDF5File.create(path).root
            try root.write("embedding.weight", floats: [Float](repeating: 0, count: rows * 2), shape: [rows, 2])
            let object: [String: Any] = ["format": "recurrentkit.pytorch", "version": 3, "modules": modules]
            try root.setAttribute("model_config", .string(String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)))
            return path
        }
        let text: [String: Any] = ["type": "TextVectorization", "name": "tv", "vocabulary": ["a", "b"]]
        let embedding: [String: Any] = ["type": "Embedding", "name": "embedding", "num_embeddings": 4, "embedding_dim": 2]
        let small: [String: Any] = ["type": "Embedding", "name": "embedding", "num_embeddings": 3, "embedding_dim": 2]
        let cases: [(String, String)] = [
            (try write([embedding, text]), "must come first and feed an Embedding"),
            (try write([text]), "must come first and feed an Embedding"),
            (try write([text, small], rows: 3), "makes 4 ids, but the Embedding has 3 rows"),
            (try write([["type": "TextVectorization", "vocabulary": ["a", "a"]], embedding]), "the same token 'a'"),
        ]
        for (path, reason) in cases {
            XCTAssertThrowsError(try LoadedModel(contentsOf: path), reason) { error in
                XCTAssertTrue("\(error)".contains(reason), "\(error)")
                XCTAssertFalse("\(error)".contains("\n"), "\(error)")
            }
        }
        let goodPath = try write([text, embedding])
        let good = try LoadedModel(contentsOf: goodPath)
        XCTAssertEqual(try good.run(.texts(["b a c", ""])).output.shape, [2, 3, 2])
        // A PyTorch source keeps its own document, TextVectorization included, in another container.
        let out = folder.appendingPathComponent("kept.safetensors").path
        let report = try Converter.convert(goodPath, to: .pytorch, output: out)
        let kept = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(report.modelConfig).utf8)) as? [String: Any])
        XCTAssertEqual(kept["version"] as? Int, 3)
        XCTAssertEqual((kept["modules"] as? [[String: Any]])?.first?["vocabulary"] as? [String], ["a", "b"])
        XCTAssertEqual(try LoadedModel(contentsOf: out).run(.texts(["b a c", ""])).output, try good.run(.texts(["b a c", ""])).output)
    }

    // MARK: Settings refused by name

    /// A copy of a committed tf-keras text model whose TextVectorization config `edit` changes.
    private func editedVectorizer(_ name: String = "tfk_text_vocab.h5", _ edit: (inout [String: Any]) -> Void) throws -> String {
        let path = try temporaryFolder(self).appendingPathComponent(name).path
        try FileManager.default.copyItem(atPath: fixture("keras/\(name)"), toPath: path)
        let file = try HDF5File.openForUpdate(path)
        let text = try XCTUnwrap(file.root.attribute("model_config")?.stringValue)
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        var inner = try XCTUnwrap(config["config"] as? [String: Any])
        var layers = try XCTUnwrap(inner["layers"] as? [[String: Any]])
        let index = try XCTUnwrap(layers.firstIndex { $0["class_name"] as? String == "TextVectorization" })
        var layerConfig = try XCTUnwrap(layers[index]["config"] as? [String: Any])
        edit(&layerConfig)
        layers[index]["config"] = layerConfig
        inner["layers"] = layers
        config["config"] = inner
        let data = try JSONSerialization.data(withJSONObject: config)
        try file.root.setAttribute("model_config", .string(String(decoding: data, as: UTF8.self)))
        return path
    }

    func testUnsupportedSettingsAreRefusedByName() throws {
        let refusals: [(String, Any, String)] = [
            ("output_mode", "multi_hot", "output_mode 'multi_hot' is not supported"),
            ("standardize", "lower_and_strip_accents", "standardize 'lower_and_strip_accents' is not supported"),
            ("standardize", ["module": "builtins", "class_name": "function", "config": "my_standardize"], "a Python function"),
            ("split", "character", "split 'character' is not supported"),
            ("ngrams", 2, "ngrams 2 is not supported"),
            ("sparse", true, "sparse True is not supported"),
            ("ragged", true, "ragged True is not supported"),
            ("idf_weights", [1.0, 2.0], "idf_weights are given"),
            ("encoding", "latin-1", "encoding 'latin-1' is not supported"),
            ("output_sequence_length", 2.5, "output_sequence_length is 2.5, not an integer"),
            ("max_tokens", 5, "more than max_tokens=5"),
            ("vocabulary", "/etc/words", "names a file ('/etc/words') outside the model file"),
            ("vocabulary", NSNull(), "holds no vocabulary"),
            ("vocabulary", [String](), "is empty"),
            ("vocabulary", ["a", "b", "a"], "vocabulary entries 2 and 4 are the same token 'a'"),
            ("vocabulary", ["a", "", "b"], "is the mask token"),
            ("vocabulary", ["a", 3], "vocabulary[1] is 3, not a string"),
        ]
        for (key, value, fragment) in refusals {
            let path = try editedVectorizer { $0[key] = value }
            XCTAssertThrowsError(try LoadedModel(contentsOf: path), "\(key)=\(value)") { error in
                let line = "\(error)"
                XCTAssertTrue(line.hasPrefix(path), line)
                XCTAssertTrue(line.contains("text_vectorization (TextVectorization)"), line)
                XCTAssertTrue(line.contains(fragment), "\(line) lacks '\(fragment)'")
                XCTAssertFalse(line.contains("\n"), line)
            }
        }
        // pad_to_max_tokens changes nothing in int mode: read, and said.
        let padded = try LoadedModel(contentsOf: try editedVectorizer { $0["pad_to_max_tokens"] = true; $0["max_tokens"] = 30 })
        XCTAssertTrue(padded.summaries.contains { $0.details.contains { $0.0 == "pad_to_max_tokens_effect" } })
    }

    // MARK: The vocabulary in a .keras archive

    /// A copy of `k3_text_lesson.keras` whose members `edit` changes (by name; nil removes).
    private func editedArchive(_ edit: (inout [String: [UInt8]]) -> Void) throws -> String {
        let source = try KerasArchive(fixture("keras/k3_text_lesson.keras"))
        let names = ["metadata.json", "config.json", "model.weights.h5",
                     "assets/layers/text_vectorization/vocabulary.txt",
                     "assets/layers/text_vectorization/_lookup_layer/vocabulary.txt"]
        var members: [String: [UInt8]] = [:]
        for name in names { members[name] = try XCTUnwrap(try source.member(name, limit: 1 << 20), name) }
        edit(&members)
        let path = try temporaryFolder(self).appendingPathComponent("edited.keras").path
        let writer = try ZipWriter(creating: path)
        for name in names { if let bytes = members[name] { try writer.add(name, bytes) } }
        try writer.finish()
        return path
    }

    func testArchiveVocabularyCopies() throws {
        let original = try LoadedModel(contentsOf: fixture("keras/k3_text_lesson.keras")).model.textVectorizer
        let lookupLayer = "assets/layers/text_vectorization/_lookup_layer/vocabulary.txt"
        let layer = "assets/layers/text_vectorization/vocabulary.txt"
        // Either copy alone is the vocabulary.
        for dropped in [lookupLayer, layer] {
            let path = try editedArchive { $0[dropped] = nil }
            XCTAssertEqual(try LoadedModel(contentsOf: path).model.textVectorizer, original, dropped)
        }
        let cases: [(String, (inout [String: [UInt8]]) -> Void, String)] = [
            ("copies differ", { $0[layer] = Array("\n[UNK]\nthe\nwas".utf8) }, "the archive's two copies of the vocabulary disagree"),
            ("no copy", { $0[layer] = nil; $0[lookupLayer] = nil }, "the archive has no vocabulary file for the layer"),
            ("not UTF-8", { $0[layer] = [0x0A, 0xFF]; $0[lookupLayer] = [0x0A, 0xFF] }, "is not valid UTF-8"),
            ("repeated token", { $0[layer] = Array("\n[UNK]\nthe\nthe".utf8); $0[lookupLayer] = $0[layer] }, "vocabulary entries 2 and 3 are the same token 'the'"),
            ("too many ids", { let many = "\n[UNK]\n" + (0..<30).map { "w\($0)" }.joined(separator: "\n")
                               $0[layer] = Array(many.utf8); $0[lookupLayer] = $0[layer] }, "more than max_tokens=24"),
        ]
        for (label, edit, fragment) in cases {
            let path = try editedArchive(edit)
            XCTAssertThrowsError(try LoadedModel(contentsOf: path), label) { error in
                let line = "\(error)"
                XCTAssertTrue(line.hasPrefix(path) && line.contains("text_vectorization (TextVectorization)"), "\(label): \(line)")
                XCTAssertTrue(line.contains(fragment), "\(label): \(line) lacks '\(fragment)'")
            }
        }
    }

    /// Weights saved alone (the archive's `model.weights.h5`, as `save_weights` writes it)
    /// take the adapted vocabulary from the `.keras` architecture's assets.
    func testWeightsOnlyFileTakesTheVocabularyFromItsArchitecture() throws {
        let archive = fixture("keras/k3_text_lesson.keras")
        let weights = try temporaryFolder(self).appendingPathComponent("lesson.weights.h5")
        try Data(try XCTUnwrap(try KerasArchive(archive).member("model.weights.h5", limit: 1 << 20))).write(to: weights)
        let model = try LoadedModel(contentsOf: weights.path, architecture: archive)
        XCTAssertEqual(model.layout, .kerasWeights)
        let verification = try Verification(model: model, fixture: try Fixture(contentsOf: fixture("keras/k3_text_lesson.fixture.h5")))
        XCTAssertTrue(verification.passed, "\(verification.comparisons.map(\.maxAbsoluteError))")
    }

    // MARK: /texts

    private func textsFile(_ write: (HDF5Group) throws -> Void) throws -> String {
        let path = try temporaryFolder(self).appendingPathComponent("texts.h5").path
        try write(try HDF5File.create(path).root)
        return path
    }

    func testTextsAreReadWithinBoundsAndAsUTF8() throws {
        let good = try textsFile { try $0.write("texts", strings: [Array("café 😀".utf8), [], Array("a\tb".utf8)]) }
        guard case .texts(let texts) = try InputFile(contentsOf: good).input else { return XCTFail("texts expected") }
        XCTAssertEqual(texts.map { Array($0.utf8) }, [Array("café 😀".utf8), [], Array("a\tb".utf8)])
        let fixed = try textsFile { try $0.write("texts", strings: [Array("ab".utf8), Array("é".utf8)], form: .fixedASCII) }
        guard case .texts(let fixedTexts) = try InputFile(contentsOf: fixed).input else { return XCTFail("texts expected") }
        XCTAssertEqual(fixedTexts, ["ab", "é"])

        let cases: [(String, (HDF5Group) throws -> Void, String)] = [
            ("invalid UTF-8", { try $0.write("texts", strings: [Array("ok".utf8), [0x61, 0xC3, 0x28]]) }, "string 1 is not valid UTF-8 (byte 1 of 3)"),
            ("a lone surrogate", { try $0.write("texts", strings: [[0xED, 0xA0, 0x80]]) }, "not valid UTF-8"),
            ("one text too long", { try $0.write("texts", strings: [[UInt8](repeating: 0x61, count: Limits.textBytes + 1)]) }, "more than \(Limits.textBytes) bytes"),
            ("fixed width too long", { try $0.write("texts", strings: [[UInt8](repeating: 0x61, count: Limits.textBytes + 1)], form: .fixedASCII) }, "over the limit of \(Limits.textBytes)"),
            ("too many texts", { try $0.write("texts", strings: [[UInt8]](repeating: [0x61], count: Limits.texts + 1)) }, "(Limits.texts)"),
            ("not strings", { try $0.write("texts", integers: [1, 2], shape: [2]) }, "expected [batch] strings"),
            ("beside inputs", { try $0.write("texts", strings: [[0x61]]); try $0.write("inputs", integers: [1], shape: [1, 1]) }, "/inputs: beside /texts"),
            ("beside lengths", { try $0.write("texts", strings: [[0x61]]); try $0.write("lengths", integers: [1], shape: [1]) }, "/lengths: beside /texts"),
        ]
        for (label, write, fragment) in cases {
            let path = try textsFile(write)
            XCTAssertThrowsError(try InputFile(contentsOf: path), label) { error in
                let line = "\(ModelError(error, file: path, kind: .unreadableFile))"
                XCTAssertTrue(line.contains(fragment), "\(label): \(line) lacks '\(fragment)'")
                XCTAssertFalse(line.contains("\n"), line)
            }
        }
    }

    /// The bounds on all strings together, for both string forms (with small bounds: the
    /// real one is 64 MiB).
    func testTotalBytesAreBoundedBeforeTheRead() throws {
        for form in [StringForm.variableUTF8, .fixedASCII] {
            let path = try textsFile { try $0.write("texts", strings: [[UInt8]](repeating: Array("abcd".utf8), count: 6), form: form) }
            let dataset = try HDF5File.open(path).root.dataset("texts")
            XCTAssertEqual(try dataset.readUTF8Strings(maxStringBytes: 4, maxTotalBytes: 30).count, 6)
            XCTAssertThrowsError(try dataset.readUTF8Strings(maxStringBytes: 4, maxTotalBytes: 20)) { error in
                XCTAssertTrue("\(error)".contains("over the limit of 20"), "\(error)")
            }
            XCTAssertThrowsError(try dataset.readUTF8Strings(maxStringBytes: 3, maxTotalBytes: 100)) { error in
                XCTAssertTrue("\(error)".contains("over the limit"), "\(error)")
            }
        }
    }

    /// `run` takes `/texts` and writes the model's output for them.
    func testRunTakesTexts() throws {
        let folder = try temporaryFolder(self)
        let input = folder.appendingPathComponent("in.h5").path
        let fixtureData = try Fixture(contentsOf: fixture("keras/tfk_text_vocab.fixture.h5"))
        guard case .texts(let texts) = fixtureData.input else { return XCTFail("texts expected") }
        try HDF5File.create(input).root.write("texts", strings: texts.map { Array($0.utf8) })
        let output = folder.appendingPathComponent("out.h5").path
        let result = try rnnkit("run", fixture("keras/tfk_text_vocab.h5"), "--input", input, "--output", output)
        XCTAssertEqual(result.status, 0, result.stderr)
        let written = try HDF5File.open(output).root.dataset("output")
        let expected = try XCTUnwrap(fixtureData.expected.first { $0.name == "output" }?.tensor)
        let comparison = Comparison(name: "output", actual: try Tensor(shape: written.shape, values: written.readFloats()),
                                    expected: expected, atol: 1e-5, rtol: 1e-4)
        XCTAssertTrue(comparison.passed, "max abs \(comparison.maxAbsoluteError)")
    }
}
