import Foundation
import XCTest
import TestSupport
@testable import RecurrentKit

/// The `model_config` schema table in spec/pytorch-layout.md ("Schema") and the decoder
/// (`ModelConfigDocument`) agree: the same module types, the same fields for each, and for
/// every row the decoder takes the documented JSON type and listed values and refuses the
/// others at the field's path, requires what the table says is required, and reads an absent
/// field as its documented default. Documents are built from the table, not from the code.
final class ModelConfigSchemaTests: XCTestCase {
    /// One row of the table.
    struct Row {
        /// The module types the row is for; `(document)` for the document's own fields.
        var types: [String]
        var field: String
        /// `string`, `integer`, `number`, `boolean` or `array`.
        var kind: String
        /// The listed values (`one of ...`) as JSON values, or nil for any of the kind.
        var values: [Any]?
        /// Required, a default (a JSON value), or neither (`none`).
        var required: Bool
        var defaultValue: Any?
    }

    static let document = "(document)"

    /// The rows of the spec's schema table.
    static func rows() throws -> [Row] {
        let spec = try String(contentsOf: fixturesFolder.deletingLastPathComponent().appendingPathComponent("spec/pytorch-layout.md"), encoding: .utf8)
        let section = try XCTUnwrap(spec.range(of: "### Schema"), "spec/pytorch-layout.md has no Schema section")
        let lines = spec[section.upperBound...].split(separator: "\n", omittingEmptySubsequences: false)
        let header = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("| type | field | value | absent |") })
        var rows: [Row] = []
        for line in lines[(header + 2)...] {
            guard line.hasPrefix("|") else { break }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
                .map { $0.trimmingCharacters(in: .whitespaces) }
            XCTAssertEqual(cells.count, 5, String(line))
            let types = cells[0] == document ? [document] : ticked(cells[0]).map(String.init)
            let field = try XCTUnwrap(ticked(cells[1]).first.map(String.init), String(line))
            let kind = String(cells[2].prefix { $0.isLetter })
            var values: [Any]?
            if let oneOf = cells[2].range(of: "one of ") {
                values = try ticked(String(cells[2][oneOf.upperBound...])).map { try jsonValue(String($0)) }
            }
            var row = Row(types: types, field: field, kind: kind, values: values, required: cells[3] == "required")
            if !row.required && cells[3] != "none" {
                row.defaultValue = try jsonValue(String(try XCTUnwrap(ticked(cells[3]).first, String(line))))
            }
            rows.append(row)
        }
        return rows
    }

    /// The `backticked` parts of a cell.
    private static func ticked(_ cell: String) -> [Substring] {
        cell.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
    }

    private static func jsonValue(_ text: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed)
    }

    /// A value of `kind`: the first listed one, else a plain one.
    private static func sample(_ row: Row) -> Any {
        if let first = row.values?.first { return first }
        switch row.kind {
        case "integer": return 2
        case "number": return 0.5
        case "boolean": return true
        case "array": return [Any]()
        default: return "x"
        }
    }

    /// Values of every JSON type a field of `kind` does not take (a number field takes
    /// integers too), to be refused as the wrong type.
    private static func wrongTypes(_ kind: String) -> [Any] {
        let samples: [(kind: String, value: Any)] = [("string", "x"), ("boolean", true), ("integer", 1), ("number", 2.5),
                                                     ("array", [1]), ("object", ["a": 1])]
        let accepted = kind == "number" ? ["number", "integer"] : [kind]
        return samples.filter { !accepted.contains($0.kind) }.map(\.value)
    }

    /// A document holding one module of `type` with its required fields, `fields` on top
    /// (`NSNull` removes one), or the document's own fields when `type` is `(document)`.
    private static func document(_ type: String, _ rows: [Row], _ fields: [String: Any]) -> [String: Any] {
        func filled(_ rows: [Row], _ base: [String: Any]) -> [String: Any] {
            var object = base
            for row in rows where row.required { object[row.field] = sample(row) }
            for (key, value) in fields { object[key] = value is NSNull ? nil : value }
            return object
        }
        let own = rows.filter { $0.types.contains(type) }
        if type == document { return filled(own, [:]) }
        return ["modules": [filled(own, ["type": type])]]
    }

    private static func decode(_ object: [String: Any]) throws -> PyTorchModelConfig {
        let json = String(decoding: try JSONSerialization.data(withJSONObject: object, options: .sortedKeys), as: UTF8.self)
        return try PyTorchModelConfig(json: json, file: "m.h5")
    }

    /// What a decoded document means, for comparing documents that must mean the same.
    private static func meaning(_ config: PyTorchModelConfig) -> String {
        "prefix \(config.prefix.debugDescription): \(config.modules)"
    }

    private func path(_ type: String, _ field: String) -> String {
        type == Self.document ? field : "modules[0].\(field)"
    }

    func testTheSpecListsEveryTypeAndFieldTheDecoderTakes() throws {
        let rows = try Self.rows()
        XCTAssertGreaterThan(rows.count, 30)
        let types = Set(rows.flatMap(\.types)).subtracting([Self.document])
        XCTAssertEqual(types, Set(ModelConfigDocument.Module.types))
        for type in types.sorted() {
            let documented = rows.filter { $0.types.contains(type) }.map(\.field)
            XCTAssertEqual(Set(documented), Set(try XCTUnwrap(ModelConfigDocument.Module.fields(ofType: type))), type)
            XCTAssertEqual(documented.count, Set(documented).count, "\(type): a field listed twice")
        }
        XCTAssertEqual(Set(rows.filter { $0.types == [Self.document] }.map(\.field)), Set(ModelConfigDocument.fields))
        XCTAssertNil(ModelConfigDocument.Module.fields(ofType: "Conv1d"))
    }

    /// Every row's JSON type is the decoder's: the documented kind (each listed value) decodes,
    /// every other JSON type is refused naming the field's path.
    func testEachFieldTakesItsDocumentedTypeAndValues() throws {
        let rows = try Self.rows()
        for row in rows {
            for type in row.types {
                let label = "\(type).\(row.field)"
                for value in row.values ?? [Self.sample(row)] {
                    XCTAssertNoThrow(try Self.decode(Self.document(type, rows, [row.field: value])), "\(label) = \(value)")
                }
                for wrong in Self.wrongTypes(row.kind) {
                    XCTAssertThrowsError(try Self.decode(Self.document(type, rows, [row.field: wrong])), "\(label) = \(wrong)") { error in
                        XCTAssertTrue("\(error)".contains("model_config: \(path(type, row.field)): expected "), "\(label): \(error)")
                    }
                }
                if let values = row.values {
                    let unlisted: Any = row.kind == "string" ? "unlisted" : row.kind == "boolean"
                        ? !(values.first as? Bool ?? true) : 7
                    XCTAssertThrowsError(try Self.decode(Self.document(type, rows, [row.field: unlisted])), label) { error in
                        XCTAssertTrue("\(error)".contains(path(type, row.field)) || "\(error)".contains("\(row.field) "),
                                      "\(label): \(error)")
                    }
                }
            }
        }
    }

    /// Required fields are refused when absent; a default is what an absent field means.
    func testRequiredFieldsAndDefaults() throws {
        let rows = try Self.rows()
        var defaults = 0
        for row in rows {
            for type in row.types {
                let label = "\(type).\(row.field)"
                let absent = Self.document(type, rows, [row.field: NSNull()])
                if row.required {
                    XCTAssertThrowsError(try Self.decode(absent), label) { error in
                        XCTAssertTrue("\(error)".contains("missing '\(row.field)'"), "\(label): \(error)")
                    }
                } else if let value = row.defaultValue {
                    let given = try Self.decode(Self.document(type, rows, [row.field: value]))
                    XCTAssertEqual(Self.meaning(try Self.decode(absent)), Self.meaning(given), label)
                    defaults += 1
                } else {
                    XCTAssertNoThrow(try Self.decode(absent), label)
                }
            }
        }
        XCTAssertGreaterThan(defaults, 20)
    }
}
