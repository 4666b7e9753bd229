import Foundation
import TextSafety

/// Decodes a `Decodable` value from parsed JSON (`StrictJSON`'s Foundation tree) strictly,
/// where `JSONDecoder` would convert or approximate:
///
/// - an integer is only a number written as an integer that the type holds: `4.0`, `4.7`,
///   `1e308`, `2^64+4` and `true` are refused, never rounded, clamped, wrapped or read as 1;
/// - a boolean is only `true` or `false`, a string only a string, a number never a boolean;
/// - `null` reads as an absent field (`decodeIfPresent` gives nil).
///
/// Every failure names the field by its path (`modules[2].hidden_size: expected an integer,
/// found a string`): `Failure.description`. Unknown fields are refused by the types
/// themselves (`Decoder.refuseUnknownFields(_:)`), which works with any decoder; a key given
/// twice is refused by the parser (`StrictJSON`).
package struct StrictJSONDecoder {
    /// The document `data` as `StrictJSON` reads it, as a Foundation tree (`[String: Any]`,
    /// `[Any]`, `String`, `NSNumber`, `NSNull`: `JSONValue.foundationObject`). Throws
    /// `StrictJSON.Failure`.
    package static func parse(_ data: Data) throws -> Any {
        try StrictJSON.parse(data).foundationObject
    }

    /// A value that does not decode: the field's path and what is wrong with it.
    struct Failure: Error, CustomStringConvertible {
        /// `modules[2].hidden_size`; empty for the document itself.
        var path: String
        var message: String

        var description: String { path.isEmpty ? message : "\(path): \(message)" }
    }

    /// Decodes `type` from `json`, a tree of `[String: Any]`, `[Any]`, `String`, `NSNumber`
    /// and `NSNull` as `JSONValue.foundationObject` gives it.
    static func decode<T: Decodable>(_ type: T.Type, from json: Any) throws -> T {
        do {
            return try T(from: StrictDecoder(json, path: []))
        } catch let error as DecodingError {
            switch error {
            case let .keyNotFound(key, context):
                throw Failure(path: pathText(context.codingPath), message: "missing '\(key.stringValue)'")
            case let .typeMismatch(_, context), let .valueNotFound(_, context), let .dataCorrupted(context):
                throw Failure(path: pathText(context.codingPath), message: context.debugDescription)
            @unknown default:
                throw Failure(path: "", message: "\(error)")
            }
        }
    }

    /// `modules[2].hidden_size`: names as written, array indices in brackets.
    static func pathText(_ path: [CodingKey]) -> String {
        var out = ""
        for key in path {
            if let index = key.intValue {
                out += "[\(index)]"
            } else {
                out += (out.isEmpty ? "" : ".") + escapedForDisplay(key.stringValue)
            }
        }
        return out
    }
}

/// Any field name or array index.
struct AnyCodingKey: CodingKey, Hashable, ExpressibleByStringLiteral {
    var stringValue: String
    var intValue: Int?

    init(_ name: String) { stringValue = name }
    init(stringLiteral name: String) { stringValue = name }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        stringValue = "\(intValue)"
        self.intValue = intValue
    }
}

extension Decoder {
    /// Refuses the first field (in sorted order) of this object that `allowed` does not
    /// name, as `unknown field 'x'` at the object's path.
    func refuseUnknownFields(_ allowed: some Sequence<String>) throws {
        let known = Set(allowed)
        let keys = try container(keyedBy: AnyCodingKey.self).allKeys.map(\.stringValue)
        if let unknown = keys.sorted().first(where: { !known.contains($0) }) {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath,
                                                    debugDescription: "unknown field '\(escapedForDisplay(unknown))'"))
        }
    }
}

/// What a value of `StrictJSON`'s Foundation tree is, as a message names it: `a string`,
/// `true`, `4.7`, `an object`.
func describeJSON(_ value: Any) -> String {
    switch value {
    case is NSNull: return "null"
    case let text as String: return text.isEmpty ? "an empty string" : "a string"
    case is [Any]: return "an array"
    case is [String: Any]: return "an object"
    case let number as NSNumber: return isJSONBoolean(number) ? (number.boolValue ? "true" : "false") : "\(number)"
    default: return "\(type(of: value))"
    }
}

/// The tree gives NSNumber for numbers and booleans alike (`JSONValue.isBoolean`).
private func isJSONBoolean(_ number: NSNumber) -> Bool {
    JSONValue.isBoolean(number)
}

/// One JSON value being decoded, and its single-value container.
private struct StrictDecoder: Decoder, SingleValueDecodingContainer {
    let value: Any
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(_ value: Any, path: [CodingKey]) {
        self.value = value
        self.codingPath = path
    }

    private func mismatch<T>(_ type: T.Type, _ expected: String) -> DecodingError {
        .typeMismatch(type, .init(codingPath: codingPath, debugDescription: "expected \(expected), found \(describeJSON(value))"))
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard let object = value as? [String: Any] else { throw mismatch([String: Any].self, "an object") }
        return KeyedDecodingContainer(KeyedContainer<Key>(object: object, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard let array = value as? [Any] else { throw mismatch([Any].self, "an array") }
        return UnkeyedContainer(array: array, codingPath: codingPath)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { self }

    func decodeNil() -> Bool { value is NSNull }

    func decode(_ type: Bool.Type) throws -> Bool {
        guard let number = value as? NSNumber, isJSONBoolean(number) else { throw mismatch(type, "true or false") }
        return number.boolValue
    }

    func decode(_ type: String.Type) throws -> String {
        guard let text = value as? String else { throw mismatch(type, "a string") }
        return text
    }

    func decode(_ type: Double.Type) throws -> Double {
        guard let number = value as? NSNumber, !isJSONBoolean(number) else { throw mismatch(type, "a number") }
        return number.doubleValue
    }

    func decode(_ type: Float.Type) throws -> Float {
        let double = try decode(Double.self)
        guard double.magnitude <= Double(Float.greatestFiniteMagnitude) else {
            throw mismatch(type, "a number within float32's range")
        }
        return Float(double)
    }

    /// An exact integer in `I`'s range: a number written as an integer
    /// (`JSONValue.isWrittenAsInteger`), by its exact value; `4.0` and `1e2` are refused.
    private func integer<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        guard let number = value as? NSNumber, JSONValue.isWrittenAsInteger(number) else { throw mismatch(type, "an integer") }
        let exact: I?
        switch String(cString: number.objCType) {
        case "S", "I", "L", "Q": exact = I(exactly: number.uint64Value)
        default: exact = I(exactly: number.int64Value)
        }
        guard let exact else { throw mismatch(type, "an integer") }
        return exact
    }

    func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: self) }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let object: [String: Any]
    let codingPath: [CodingKey]

    var allKeys: [Key] { object.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { object[key.stringValue] != nil }

    private func child(_ key: Key) throws -> StrictDecoder {
        guard let value = object[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing"))
        }
        return StrictDecoder(value, path: codingPath + [key])
    }

    func decodeNil(forKey key: Key) throws -> Bool { try child(key).decodeNil() }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try child(key).decode(type) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try child(key).decode(type) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try child(key).decode(type) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try child(key).decode(type) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try child(key).decode(type) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try child(key).decode(type) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try child(key).decode(type) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try child(key).decode(type) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try child(key).decode(type) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try child(key).decode(type) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try child(key).decode(type) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try child(key).decode(type) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try child(key).decode(type) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try child(key).decode(type) }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try T(from: child(key)) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey> {
        try child(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        try child(key).unkeyedContainer()
    }

    func superDecoder() throws -> Decoder { StrictDecoder(object, path: codingPath) }
    func superDecoder(forKey key: Key) throws -> Decoder { try child(key) }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let array: [Any]
    let codingPath: [CodingKey]
    var currentIndex = 0

    init(array: [Any], codingPath: [CodingKey]) {
        self.array = array
        self.codingPath = codingPath
    }

    var count: Int? { array.count }
    var isAtEnd: Bool { currentIndex >= array.count }

    private mutating func next() throws -> StrictDecoder {
        let key = AnyCodingKey(intValue: currentIndex)!
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath + [key], debugDescription: "missing"))
        }
        defer { currentIndex += 1 }
        return StrictDecoder(array[currentIndex], path: codingPath + [key])
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, array[currentIndex] is NSNull else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try next().decode(type) }
    mutating func decode(_ type: String.Type) throws -> String { try next().decode(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try next().decode(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try next().decode(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try next().decode(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try next().decode(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try next().decode(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try next().decode(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try next().decode(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try next().decode(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try next().decode(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try next().decode(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try next().decode(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try next().decode(type) }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: next()) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey> {
        try next().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer { try next().unkeyedContainer() }
    mutating func superDecoder() throws -> Decoder { try next() }
}
