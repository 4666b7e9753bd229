import CYaml
import Foundation
import TextSafety
import Yams

/// A value of a manifest, JSON or YAML alike, after the node budget was counted.
package enum ManifestValue {
    /// A string or a YAML plain scalar; `number` when it reads as one (JSON numbers, YAML
    /// ints and floats).
    case text(String, number: Double?)
    case number(Double)
    case list([ManifestValue])
    case map([(key: String, value: ManifestValue)])
    /// JSON `null`; YAML's plain `null`, `~`, `Null`, `NULL` or nothing (a quoted `'null'`
    /// is a string).
    case null
    case other(String)

    var kindName: String {
        switch self {
        case .text: return "a string"
        case .number: return "a number"
        case .list: return "a list"
        case .map: return "a mapping"
        case .null: return "null"
        case .other(let name): return name
        }
    }
}

extension VerificationSuite {
    /// The fields a manifest entry may have.
    public static let manifestFields = ["model", "fixture", "architecture", "key", "modules", "atol", "rtol", "name"]

    /// The cases of a manifest: a JSON or YAML list of `{model, fixture, architecture?, key?,
    /// atol?, rtol?, name?}` (or `{cases: [...]}`), paths relative to the manifest's folder.
    /// `architecture: null` means no architecture, not even the fixture's attribute.
    ///
    /// JSON when the file is named `.json` or starts with `{` or `[` and parses as JSON,
    /// else YAML. Bounded: at most `Limits.manifestBytes`; YAML anchors and aliases are
    /// refused before Yams composes anything (`anchorOrAlias`), and the values are counted
    /// against `Limits.manifestNodes`; at most `Limits.verifyCases` cases.
    ///
    /// - Throws: `ModelError` naming the manifest, with the entry's index and field for an
    ///   unknown field, a missing `model` or `fixture`, or a value of the wrong kind.
    public static func cases(manifest path: String) throws -> [VerificationCase] {
        let data = try InputFiles.read(path, limit: Limits.manifestBytes, what: "Limits.manifestBytes")
        guard let text = String(data: data, encoding: .utf8) else {
            throw ModelError(.invalidInput, file: path, message: "is not UTF-8 text; a manifest is JSON or YAML")
        }
        let value = try parseManifest(text, file: path)
        return try manifestCases(value, file: path)
    }

    package static func parseManifest(_ text: String, file: String) throws -> ManifestValue {
        let trimmed = text.drop { $0.isWhitespace }
        if file.lowercased().hasSuffix(".json") || trimmed.first == "{" || trimmed.first == "[" {
            if let problem = Limits.checkJSONSize(text) { throw ModelError(.invalidInput, file: file, message: problem) }
            if let object = try? StrictJSONDecoder.parse(Data(text.utf8), options: [.fragmentsAllowed]) {
                var budget = Limits.manifestNodes
                return try jsonValue(object, budget: &budget, file: file)
            }
            if file.lowercased().hasSuffix(".json") {
                throw ModelError(.invalidInput, file: file, message: "is not valid JSON")
            }
        }
        if let problem = anchorOrAlias(text) {
            throw ModelError(.invalidInput, file: file, message: "\(problem); a manifest uses no YAML anchors or aliases (write each entry out)")
        }
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw ModelError(.invalidInput, file: file, message: "is not valid JSON or YAML: \(oneLineYAMLError(error))")
        }
        guard let node else { throw ModelError(.invalidInput, file: file, message: "is empty; a manifest lists cases") }
        var budget = Limits.manifestNodes
        return try yamlValue(node, budget: &budget, file: file, depth: 0)
    }

    private static func oneLineYAMLError(_ error: Error) -> String {
        "\(error)".split(whereSeparator: \.isNewline).first.map(String.init) ?? "\(error)"
    }

    private static func spend(_ budget: inout Int, file: String) throws {
        budget -= 1
        guard budget >= 0 else {
            throw ModelError(.invalidInput, file: file, message: "holds more than \(Limits.manifestNodes) values once its YAML aliases are followed (Limits.manifestNodes); refused")
        }
    }

    static func yamlValue(_ node: Node, budget: inout Int, file: String, depth: Int) throws -> ManifestValue {
        try spend(&budget, file: file)
        // libyaml stops nesting at 1000 levels; a manifest needs 3.
        guard depth < 64 else { throw ModelError(.invalidInput, file: file, message: "nests deeper than 64 levels; refused") }
        switch node {
        case .scalar(let scalar):
            if node.null != nil, ["", Tag.Name.null.rawValue].contains(scalar.tag.description) { return .null }
            return .text(scalar.string, number: node.float ?? node.int.map(Double.init))
        case .sequence(let sequence):
            var items: [ManifestValue] = []
            for item in sequence { items.append(try yamlValue(item, budget: &budget, file: file, depth: depth + 1)) }
            return .list(items)
        case .mapping(let mapping):
            var pairs: [(key: String, value: ManifestValue)] = []
            for (key, value) in mapping {
                try spend(&budget, file: file)
                guard case .scalar(let name) = key else { return .other("a mapping with a key that is not a string") }
                pairs.append((name.string, try yamlValue(value, budget: &budget, file: file, depth: depth + 1)))
            }
            return .map(pairs)
        case .alias:
            return .other("an unresolved alias")
        }
    }

    static func jsonValue(_ object: Any, budget: inout Int, file: String) throws -> ManifestValue {
        try spend(&budget, file: file)
        switch object {
        case let text as String: return .text(text, number: nil)
        case let list as [Any]: return .list(try list.map { try jsonValue($0, budget: &budget, file: file) })
        case let map as [String: Any]:
            return .map(try map.keys.sorted().map { ($0, try jsonValue(map[$0] as Any, budget: &budget, file: file)) })
        case let number as NSNumber:
            if ["c", "B"].contains(String(cString: number.objCType)) { return .other("a boolean") }
            return .number(number.doubleValue)
        case is NSNull: return .null
        default: return .other("an unknown value")
        }
    }

    /// Describes the first YAML anchor (`&name`) or alias (`*name`) in `text`, or nil (also
    /// for text libyaml cannot parse: Yams then reports the error at the same place, before
    /// composing anything past it).
    ///
    /// A manifest is a short list written by hand, and aliases are what make YAML's work out
    /// of proportion to its bytes: an alias repeats its anchor's whole subtree, and Yams
    /// compares a mapping's keys by hashing them in full, aliases followed, before any bound
    /// of ours can count them (`{ *a }` and `{? *a}` are keys as much as `*a: 1`). So both
    /// are refused, found in libyaml's own event stream — the parser Yams runs, so nothing
    /// it would read as an alias is missed — in one pass over the text.
    static func anchorOrAlias(_ text: String) -> String? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return "cannot be parsed (libyaml did not start)" }
        defer { yaml_parser_delete(&parser) }
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBufferPointer { buffer -> String? in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { return nil }
                defer { yaml_event_delete(&event) }
                let line = event.start_mark.line + 1
                func named(_ name: UnsafeMutablePointer<yaml_char_t>?) -> String {
                    name.map { escapedForDisplay(String(cString: $0)) } ?? ""
                }
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return nil
                case YAML_ALIAS_EVENT:
                    return "line \(line) uses the YAML alias *\(named(event.data.alias.anchor))"
                case YAML_SCALAR_EVENT where event.data.scalar.anchor != nil:
                    return "line \(line) sets the YAML anchor &\(named(event.data.scalar.anchor))"
                case YAML_SEQUENCE_START_EVENT where event.data.sequence_start.anchor != nil:
                    return "line \(line) sets the YAML anchor &\(named(event.data.sequence_start.anchor))"
                case YAML_MAPPING_START_EVENT where event.data.mapping_start.anchor != nil:
                    return "line \(line) sets the YAML anchor &\(named(event.data.mapping_start.anchor))"
                default:
                    continue
                }
            }
        }
    }

    /// The cases of a parsed manifest.
    package static func manifestCases(_ value: ManifestValue, file: String) throws -> [VerificationCase] {
        let entries: [ManifestValue]
        switch value {
        case .list(let items):
            entries = items
        case .map(let pairs):
            guard let cases = pairs.first(where: { $0.key == "cases" }) else {
                throw ModelError(.invalidInput, file: file, message: "is a mapping without 'cases'; a manifest is a list of cases or {cases: [...]}")
            }
            if let other = pairs.first(where: { $0.key != "cases" }) {
                throw ModelError(.invalidInput, file: file, message: "has an unknown field '\(escapedForDisplay(other.key))' beside 'cases'")
            }
            guard case .list(let items) = cases.value else {
                throw ModelError(.invalidInput, file: file, message: "'cases' is \(cases.value.kindName), expected a list")
            }
            entries = items
        default:
            throw ModelError(.invalidInput, file: file, message: "is \(value.kindName); a manifest is a list of cases or {cases: [...]}")
        }
        guard entries.count <= Limits.verifyCases else {
            throw ModelError(.invalidInput, file: file, message: "lists \(entries.count) cases, \(Limits.excess(entries.count, over: Limits.verifyCases)) (Limits.verifyCases)")
        }
        let folder = OutputFiles.split(file).folder
        func resolved(_ name: String) -> String {
            name.hasPrefix("/") || !file.contains("/") ? name : (folder == "/" ? "/" : folder + "/") + name
        }
        return try entries.enumerated().map { index, entry in
            func refuse(_ message: String) -> ModelError {
                ModelError(.invalidInput, file: file, path: "entry \(index)", message: message)
            }
            guard case .map(let pairs) = entry else { throw refuse("is \(entry.kindName), expected a mapping {model, fixture, ...}") }
            var fields: [String: ManifestValue] = [:]
            for (key, value) in pairs {
                guard manifestFields.contains(key) else {
                    throw refuse("has an unknown field '\(escapedForDisplay(key))' (known: \(manifestFields.joined(separator: ", ")))")
                }
                guard fields[key] == nil else { throw refuse("gives '\(key)' twice") }
                fields[key] = value
            }
            func string(_ key: String) throws -> String? {
                guard let value = fields[key] else { return nil }
                guard case .text(let text, _) = value, !text.isEmpty else { throw refuse("'\(key)' is \(value.kindName), expected a non-empty string") }
                return text
            }
            func tolerance(_ key: String) throws -> Double? {
                guard let value = fields[key] else { return nil }
                let number: Double?
                switch value {
                case .number(let n): number = n
                case .text(_, let n): number = n
                default: number = nil
                }
                guard let number, number.isFinite, number >= 0 else {
                    throw refuse("'\(key)' is not a finite non-negative number")
                }
                return number
            }
            guard let fixture = try string("fixture") else { throw refuse("has no 'fixture'") }
            guard let model = try string("model") else { throw refuse("has no 'model'") }
            let fixturePath = resolved(fixture)
            let (group, fixtureFile) = OutputFiles.split(fixturePath)
            // `architecture: null` is none: not even the fixture's attribute.
            let noArchitecture: Bool
            if case .null? = fields["architecture"] { noArchitecture = true } else { noArchitecture = false }
            var result = VerificationCase(name: try string("name") ?? stem(of: fixtureFile), group: group, fixture: fixturePath,
                                          model: resolved(model),
                                          architecture: noArchitecture ? nil : try string("architecture").map(resolved),
                                          key: try string("key"),
                                          modules: try string("modules").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) },
                                          atol: try tolerance("atol"), rtol: try tolerance("rtol"))
            result.withoutArchitecture = noArchitecture
            return result
        }
    }
}
