import Foundation
import TextSafety

/// The one JSON reader for every JSON document RecurrentKit reads: Keras configs
/// (`model_config`, `config.json`, `metadata.json`, `to_json()` architectures), PyTorch
/// `model_config` documents, safetensors headers, verify manifests and fixture attributes.
///
/// RFC 8259's grammar and nothing more, in UTF-8, where `JSONSerialization` is lenient:
/// - a key given twice in one object is refused, naming it and the object's path, rather
///   than one of the two kept without a word (keys Swift's `String` calls equal count as
///   the same: a dictionary could reach only one of them);
/// - numbers keep their text, so an integer is only one written as an integer (`4`, not
///   `4.0`, `4e0`, `1e308`, or `true`), and one that no `Int` holds is never rounded;
/// - nesting is bounded (`Limits.jsonNesting`, or less where a format needs less), so a
///   hostile document cannot exhaust the stack.
///
/// Strings are kept as written: a U+FEFF inside one (a vocabulary token may start with it)
/// stays, while a byte order mark before the document is skipped, as `JSONSerialization`
/// skips it. Callers bound the document's size and item count before parsing
/// (`Limits.checkJSONSize`). Every refusal is a `Failure` whose description names where
/// (`modules[1]: holds key 'hidden_size' twice in one object; …`).
enum StrictJSON {
    /// Why a document is refused: where (the path of the value, empty for the document) and what.
    struct Failure: Error, CustomStringConvertible {
        /// `modules[2].hidden_size`, as `StrictJSONDecoder.pathText` writes it; empty for the document.
        var path: String
        var message: String
        /// True when the text breaks JSON's grammar (rather than a rule of this reader, such
        /// as a key given twice): the text may be another language (a YAML manifest).
        var isSyntaxError = false

        var description: String { path.isEmpty ? message : "\(path): \(message)" }
    }

    /// Parses `bytes` as one JSON value (any value, not only an object or an array), with
    /// nothing after it but JSON whitespace.
    static func parse(_ bytes: [UInt8], maximumDepth: Int = Limits.jsonNesting) throws -> JSONValue {
        var scanner = Scanner(bytes: bytes, maximumDepth: maximumDepth)
        return try scanner.document()
    }

    /// The same from `data`.
    static func parse(_ data: Data, maximumDepth: Int = Limits.jsonNesting) throws -> JSONValue {
        try parse([UInt8](data), maximumDepth: maximumDepth)
    }

    /// A `[String: Any]` document from `text`: bounded first (`Limits.checkJSONSize`), then
    /// parsed; refused when the root is not an object. Throws `fail(message)` for each refusal.
    static func object(_ text: String, fail: (String) -> Error) throws -> [String: Any] {
        if let refusal = Limits.checkJSONSize(text) { throw fail(refusal) }
        let root: JSONValue
        do {
            root = try parse(Array(text.utf8))
        } catch let failure as Failure {
            throw fail(failure.description)
        }
        guard case .object = root, let object = root.foundationObject as? [String: Any] else {
            throw fail("is not a JSON object")
        }
        return object
    }
}

extension JSONValue {
    /// True for an `NSNumber` of `foundationObject` that was written as an integer that
    /// 64 bits hold (and is not a boolean): the only numbers an integer field takes.
    static func isWrittenAsInteger(_ number: NSNumber) -> Bool {
        !(number is NSDecimalNumber) && ["s", "i", "l", "q", "S", "I", "L", "Q"].contains(String(cString: number.objCType))
    }

    /// True for `true` and `false` in `foundationObject` (Objective-C type `c`; `is Bool`
    /// holds for the numbers 0 and 1 too).
    static func isBoolean(_ number: NSNumber) -> Bool {
        String(cString: number.objCType) == "c"
    }
}

/// A JSON value as `StrictJSON` reads it: objects keep their members in the document's order
/// (no key twice), numbers their text.
indirect enum JSONValue {
    case object([(key: String, value: JSONValue)])
    case array([JSONValue])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    /// The value when it is an integer written as one (`12`, not `12.0`, `1.2e1` or `true`)
    /// that an `Int` holds.
    var exactInteger: Int? {
        guard case let .number(text) = self else { return nil }
        return Int(text)
    }

    /// What the value is, as a message names it: `a string`, `true`, `1.5`, `an object`.
    var described: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case let .string(text): return text.isEmpty ? "an empty string" : "a string"
        case let .number(text): return escapedForDisplay(text)
        case let .bool(value): return "\(value)"
        case .null: return "null"
        }
    }

    /// The value as `JSONSerialization` gives it, for code written against that tree:
    /// `[String: Any]`, `[Any]`, `String`, `NSNull`, and `NSNumber` — a boolean for `true` and
    /// `false` (Objective-C type `c`), an integer type for a number written as an integer
    /// that 64 bits hold, an `NSDecimalNumber` for a longer integer (its digits exact), a
    /// double for every other number (`4.0`, `1e2`). So an integer-typed `NSNumber` is a
    /// number written as an integer (`JSONValue.isWrittenAsInteger`).
    var foundationObject: Any {
        switch self {
        case let .object(members):
            var object: [String: Any] = [:]
            object.reserveCapacity(members.count)
            for (key, value) in members { object[key] = value.foundationObject }
            return object
        case let .array(items): return items.map(\.foundationObject)
        case let .string(text): return text
        case let .number(text): return Self.foundationNumber(text)
        case let .bool(value): return NSNumber(value: value)
        case .null: return NSNull()
        }
    }

    /// A number's text (checked by the scanner: finite as a double) as an `NSNumber`.
    private static func foundationNumber(_ text: String) -> NSNumber {
        if !text.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) {
            if let int = Int64(text) { return NSNumber(value: int) }
            if let unsigned = UInt64(text) { return NSNumber(value: unsigned) }
            // Beyond 64 bits: its digits kept exactly, as JSONSerialization keeps them.
            return NSDecimalNumber(string: text)
        }
        return NSNumber(value: Double(text) ?? .nan)
    }
}

extension StrictJSON {
    /// A recursive-descent reader over the document's bytes, tracking the path of the value
    /// it is in for its messages.
    fileprivate struct Scanner {
        let bytes: [UInt8]
        let maximumDepth: Int
        var index = 0
        /// The keys and indices leading to the value being read.
        var path: [AnyCodingKey] = []

        init(bytes: [UInt8], maximumDepth: Int) {
            self.bytes = bytes
            self.maximumDepth = maximumDepth
        }

        /// One JSON value and nothing after it but whitespace (safetensors pads with spaces);
        /// a UTF-8 byte order mark before it is skipped.
        mutating func document() throws -> JSONValue {
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
            skipWhitespace()
            let root = try value(depth: 0)
            skipWhitespace()
            guard index == bytes.count else { throw failure("text after the JSON value") }
            return root
        }

        /// A syntax error: the grammar is broken at the current byte.
        private func failure(_ what: String) -> Failure {
            Failure(path: "", message: "is not valid JSON: \(what) at byte \(index)", isSyntaxError: true)
        }

        /// A refusal of a well-formed value, at the path being read.
        private func refusal(_ message: String) -> Failure {
            Failure(path: StrictJSONDecoder.pathText(path), message: message)
        }

        private var next: UInt8? { index < bytes.count ? bytes[index] : nil }

        private mutating func skipWhitespace() {
            while let byte = next, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
        }

        private mutating func expect(_ byte: UInt8, _ what: String) throws {
            guard next == byte else {
                throw failure(next == nil ? "the text ends where \(what) was expected" : "expected \(what)")
            }
            index += 1
        }

        private mutating func value(depth: Int) throws -> JSONValue {
            guard depth < maximumDepth else {
                throw refusal("nests JSON deeper than \(maximumDepth) levels")
            }
            guard let byte = next else { throw failure("the text ends where a value was expected") }
            switch byte {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw failure("unexpected character")
            }
        }

        private mutating func object(depth: Int) throws -> JSONValue {
            var members: [(key: String, value: JSONValue)] = []
            var seen = Set<String>()
            try elements(closedBy: "}") { scanner in
                guard scanner.next == UInt8(ascii: "\"") else { throw scanner.failure("expected a key") }
                let key = try scanner.string()
                guard seen.insert(key).inserted else {
                    throw scanner.refusal("holds key '\(escapedForDisplay(key))' twice in one object; refused (JSON readers keep only one)")
                }
                scanner.skipWhitespace()
                try scanner.expect(UInt8(ascii: ":"), "':'")
                scanner.skipWhitespace()
                scanner.path.append(AnyCodingKey(key))
                members.append((key, try scanner.value(depth: depth + 1)))
                scanner.path.removeLast()
            }
            return .object(members)
        }

        private mutating func array(depth: Int) throws -> JSONValue {
            var items: [JSONValue] = []
            try elements(closedBy: "]") { scanner in
                scanner.path.append(AnyCodingKey(intValue: items.count)!)
                items.append(try scanner.value(depth: depth + 1))
                scanner.path.removeLast()
            }
            return .array(items)
        }

        /// The elements of an object or array, from its opening byte to `close`: `element`
        /// reads each (whitespace before and after is skipped here), commas between them.
        private mutating func elements(closedBy close: Unicode.Scalar, _ element: (inout Scanner) throws -> Void) throws {
            let closing = UInt8(ascii: close)
            index += 1
            skipWhitespace()
            if next == closing {
                index += 1
                return
            }
            while true {
                skipWhitespace()
                try element(&self)
                skipWhitespace()
                if next == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                try expect(closing, "',' or '\(close)'")
                return
            }
        }

        private mutating func literal(_ word: String) throws {
            for byte in word.utf8 {
                guard next == byte else { throw failure("unexpected character") }
                index += 1
            }
        }

        /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, kept as written; refused when
        /// no double holds it (`1e400`), as `JSONSerialization` refuses it.
        private mutating func number() throws -> JSONValue {
            let start = index
            func digits() throws {
                guard let byte = next, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else {
                    throw failure("expected a digit")
                }
                while let byte = next, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { index += 1 }
            }
            if next == UInt8(ascii: "-") { index += 1 }
            if next == UInt8(ascii: "0") { index += 1 } else { try digits() }
            if next == UInt8(ascii: ".") {
                index += 1
                try digits()
            }
            if next == UInt8(ascii: "e") || next == UInt8(ascii: "E") {
                index += 1
                if next == UInt8(ascii: "+") || next == UInt8(ascii: "-") { index += 1 }
                try digits()
            }
            let text = String(decoding: bytes[start..<index], as: UTF8.self)
            guard Double(text)?.isFinite == true else {
                throw refusal("the number \(escapedForDisplay(text)) is beyond a double's range")
            }
            return .number(text)
        }

        /// A string's value, its bytes checked to be UTF-8.
        private mutating func string() throws -> String {
            index += 1
            let start = index
            var out: [UInt8] = []
            var escaped = false
            while true {
                guard let byte = next else { throw failure("a string is not closed") }
                switch byte {
                case UInt8(ascii: "\""):
                    let raw = escaped ? out : Array(bytes[start..<index])
                    guard let text = String(validating: raw, as: UTF8.self) else {
                        throw failure("a string is not UTF-8")
                    }
                    index += 1
                    return text
                case UInt8(ascii: "\\"):
                    if !escaped {
                        out = Array(bytes[start..<index])
                        escaped = true
                    }
                    index += 1
                    guard let escape = next else { throw failure("a string is not closed") }
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var value = try hexQuad()
                        if (0xD800..<0xDC00).contains(value) {
                            // A surrogate pair: the low half must follow at once.
                            guard next == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
                                throw failure("an unpaired surrogate escape")
                            }
                            index += 2
                            let low = try hexQuad()
                            guard (0xDC00..<0xE000).contains(low) else { throw failure("an unpaired surrogate escape") }
                            value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let scalar = Unicode.Scalar(value) else { throw failure("an unpaired surrogate escape") }
                        out += Array(String(Character(scalar)).utf8)
                    default:
                        index -= 1
                        throw failure("an unknown escape")
                    }
                case 0..<0x20:
                    throw failure("a control character inside a string (JSON requires it escaped)")
                default:
                    if escaped { out.append(byte) }
                    index += 1
                }
            }
        }

        private mutating func hexQuad() throws -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 {
                guard let byte = next, let digit = Self.hexDigit(byte) else { throw failure("expected 4 hex digits after \\u") }
                value = value << 4 | digit
                index += 1
            }
            return value
        }

        private static func hexDigit(_ byte: UInt8) -> UInt32? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte - UInt8(ascii: "A") + 10)
            default: return nil
            }
        }
    }
}
