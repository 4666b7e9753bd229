import Foundation
import TestSupport
import XCTest
@testable import RecurrentKit

/// Vocabularies held compactly (issue 26, item 5): a vocabulary file's lines go into one
/// byte buffer with offsets (`TokenList`) and are looked up through an open-addressing table
/// (`TokenIndex`), not a `String` and a dictionary entry per token; the lines, ids and
/// refusals are those of the string-per-line reading they replace.
final class VocabularyStorageTests: XCTestCase {
    /// The reading this one replaces, kept as the reference: Unicode scalars, Python's
    /// `str.splitlines()` after universal newlines, trailing empty lines dropped.
    private func referenceLines(_ bytes: [UInt8]) -> [String]? {
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        var lines: [String] = []
        var current = String.UnicodeScalarView()
        var scalars = text.unicodeScalars.makeIterator()
        var pending = scalars.next()
        while let scalar = pending {
            pending = scalars.next()
            switch scalar.value {
            case 0x0D:
                if pending == "\n" { pending = scalars.next() }
                fallthrough
            case 0x0A, 0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029:
                lines.append(String(current))
                current = String.UnicodeScalarView()
            default:
                current.append(scalar)
            }
        }
        if !current.isEmpty { lines.append(String(current)) }
        while lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }

    private func bytes(_ lines: some Sequence<String>) -> [[UInt8]] { lines.map { Array($0.utf8) } }

    /// Every separator, its look-alikes (`¢` is C2 A2, `…` E2 80 A6, `\u{2027}` E2 80 A7),
    /// `\r` at the end and before `\n`, multi-byte characters and invalid UTF-8, in 3000
    /// random texts: the same lines as the reference, byte for byte, or nil with it.
    func testLinesAreTheReferenceLinesByteForByte() throws {
        let pieces: [[UInt8]] = ["a", "[UNK]", "é", "e\u{301}", "¢", "…", "\u{2027}", "\u{2028}", "\u{2029}", "\u{85}",
                                 "\r", "\n", "\r\n", "\u{0B}", "\u{0C}", "\u{1C}", "\u{1D}", "\u{1E}", "\u{1F}", "\t", " ",
                                 "😀", "\u{FEFF}", "\0", ""].map { Array($0.utf8) } + [[0xC2], [0xE2, 0x80], [0xFF]]
        var generator = SystemRandomNumberGenerator()
        var checked = 0
        for round in 0..<3000 {
            var text: [UInt8] = []
            for _ in 0..<Int.random(in: 0...12, using: &generator) {
                // Invalid bytes in one text of ten only, so most texts are read.
                var piece = pieces[Int.random(in: 0..<pieces.count, using: &generator)]
                while round % 10 != 0 && String(validating: piece, as: UTF8.self) == nil {
                    piece = pieces[Int.random(in: 0..<pieces.count, using: &generator)]
                }
                text += piece
            }
            let expected = referenceLines(text)
            let lines = KerasTextVectorization.vocabularyLines(text)
            XCTAssertEqual(lines.map { bytes($0) }, expected.map { bytes($0) }, "\(text)")
            if expected != nil { checked += 1 }
        }
        XCTAssertGreaterThan(checked, 2000)
        XCTAssertEqual(KerasTextVectorization.vocabularyLines(Array("\u{2029}a¢…\u{2027}b\r".utf8)), ["", "a¢…\u{2027}b"])
    }

    /// Dropping Keras's two reserved lines copies nothing and keeps every token's bytes; a
    /// list is equal to another with the same tokens however it was made.
    func testReservedLinesAreDroppedInPlace() throws {
        let lines = try XCTUnwrap(KerasTextVectorization.vocabularyLines(Array("\n[UNK]\nthe\n\ncafé\n\n".utf8)))
        XCTAssertEqual(Array(lines), ["", "[UNK]", "the", "", "café"])
        let tokens = KerasTextVectorization.tokens(fromVocabulary: lines)
        XCTAssertEqual(tokens, ["the", "", "café"])
        XCTAssertEqual(Array(tokens), ["the", "", "café"])
        XCTAssertEqual(tokens.totalBytes, 3 + 5)
        XCTAssertEqual(tokens.byteCount(at: 2), 5)
        XCTAssertNotEqual(tokens, ["the", "café", ""])
        XCTAssertNotEqual(tokens, ["th", "e", "café"])
        XCTAssertEqual(KerasTextVectorization.tokens(fromVocabulary: ["[UNK]", ""]), ["[UNK]", ""])
        XCTAssertEqual(KerasTextVectorization.tokens(fromVocabulary: TokenList()), [])
        var trimmed: TokenList = ["a", "bc", "d"]
        trimmed.removeLast(1)
        trimmed.removeFirst(1)
        XCTAssertEqual(trimmed, ["bc"])
        trimmed.removeFirst(1)
        XCTAssertEqual(trimmed, [])
        XCTAssertTrue(trimmed.isEmpty)
    }

    /// Lookup by bytes through the table, and the refusals Keras makes, naming the first
    /// entry that is the mask token or repeats an earlier one, as the dictionary did.
    func testLookupAndRefusalsAreByBytes() throws {
        let words = (0..<5000).map { "w\($0)" } + ["é", "e\u{301}", "😀", "[UNK]"]
        let vectorizer = try TextVectorizer(lowercase: false, stripPunctuation: false, split: .whitespace, tokens: words)
        XCTAssertEqual(vectorizer.vocabularySize, words.count + 2)
        XCTAssertEqual(vectorizer.ids(of: "w0 w4999 é e\u{301} 😀 [UNK] nope w5000"),
                       [2, 5001, 5002, 5003, 5004, 5005, 1, 1])
        XCTAssertEqual(Array(vectorizer.vocabulary.prefix(3)), ["", "[UNK]", "w0"])
        XCTAssertEqual(vectorizer.vocabulary[5003], "e\u{301}")
        XCTAssertEqual(vectorizer, try TextVectorizer(lowercase: false, stripPunctuation: false, split: .whitespace,
                                                      tokens: TokenList(words)))
        XCTAssertNotEqual(vectorizer, try TextVectorizer(lowercase: false, stripPunctuation: false, split: .whitespace,
                                                         tokens: Array(words.dropLast())))
        func refusal(_ tokens: [String]) -> String? {
            do {
                _ = try TextVectorizer(lowercase: false, stripPunctuation: false, split: .none, tokens: tokens)
                return nil
            } catch let error as EngineError {
                return error.message
            } catch {
                return "\(error)"
            }
        }
        XCTAssertEqual(refusal(["a", "b", "a"]), "vocabulary entries 2 and 4 are the same token 'a'")
        XCTAssertEqual(refusal(["a", "", "b"]), "vocabulary entry 3 is the mask token '', which only id 0 may be")
        XCTAssertEqual(refusal(["a", "", ""]), "vocabulary entry 3 is the mask token '', which only id 0 may be")
        XCTAssertEqual(refusal(["a", "b", "b", ""]), "vocabulary entries 3 and 4 are the same token 'b'")
        XCTAssertEqual(refusal(["a", "", "b", "b"]), "vocabulary entry 3 is the mask token '', which only id 0 may be")
        XCTAssertNil(refusal(["é", "e\u{301}"]))
    }

    /// Issue 26's vocabulary file of 12.96 M four-character tokens (64.8 MB), made here in
    /// memory: its lines, tokens and lookup table fit in a few bytes per token byte. The
    /// probe in fixtures/hostile/probes.json runs the 28 MB `.keras` through `rnnkit inspect`.
    /// (A debug build, many times slower, takes 20 of the 60 characters: 160 000 tokens.)
    func testTwelveMillionTokensAreReadAndLookedUp() throws {
        #if DEBUG
        let alphabet = Array("0123456789abcdefghij".utf8)
        #else
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX".utf8)
        #endif
        let count = alphabet.count * alphabet.count * alphabet.count * alphabet.count
        var text = [UInt8](repeating: 0x0A, count: 6 + 5 * count)
        text.replaceSubrange(0..<6, with: Array("\n[UNK]".utf8))
        var offset = 6
        for a in alphabet { for b in alphabet { for c in alphabet { for d in alphabet {
            (text[offset + 1], text[offset + 2], text[offset + 3], text[offset + 4]) = (a, b, c, d)
            offset += 5
        } } } }
        let lines = try XCTUnwrap(KerasTextVectorization.vocabularyLines(text))
        text = []
        XCTAssertEqual(lines.count, count + 2)
        let tokens = KerasTextVectorization.tokens(fromVocabulary: lines)
        let vectorizer = try TextVectorizer(lowercase: false, stripPunctuation: false, split: .whitespace, tokens: tokens)
        XCTAssertEqual(vectorizer.vocabularySize, count + 2)
        let n = alphabet.count
        let last = String(decoding: [UInt8](repeating: alphabet[n - 1], count: 4), as: UTF8.self)
        XCTAssertEqual(vectorizer.ids(of: "0000 \(last) 0001 1234 \(last)0"),
                       [2, count + 1, 3, 2 + n * n * n + 2 * n * n + 3 * n + 4, 1])
    }
}
