import TextSafety

/// Which keys of a state_dict a model reads, and the notes that say what it did not read.
///
/// A `model_config` names the modules it uses, and that is the selection: the keys read are
/// those directly under a module's key prefix (`<prefix><name>.<parameter>`); every other
/// key is left unread, counted in one note. Modules picked by key prefix select the same
/// way. Keys under the prefix a training wrapper adds — `module.` (`nn.DataParallel`,
/// `DistributedDataParallel`), `_orig_mod.` (`torch.compile`) — are found whether or not the
/// selection states it: when every key starts with such a prefix and the selection's key
/// prefixes do not, the keys are looked up under it, and a note says so.
struct ModuleSelection {
    /// The wrapper prefixes the keys are looked up under because the selection does not
    /// state them (`""` when it does, or when the keys have none).
    let implied: String
    /// Every wrapper prefix all keys start with (`module.`), stated or not.
    let wrapper: String
    /// The key prefix of every module read, `implied` included, each ending in `.`.
    let modulePrefixes: Set<String>
    /// Every key of the state_dict, in the file's order.
    let keys: [String]

    /// `stated`: the key prefixes of the modules read, as the selection states them
    /// (`<prefix><name>.`).
    init(keys: [String], moduleKeyPrefixes stated: [String]) {
        let wrapper = Self.wrapper(of: keys)
        let implied = Self.implied(wrapper: wrapper, stated: stated)
        self.implied = implied
        self.wrapper = wrapper.joined()
        self.modulePrefixes = Set(stated.map { implied + $0 })
        self.keys = keys
    }

    /// True for a key (dotted) directly under a module's key prefix.
    func reads(_ key: String) -> Bool {
        guard let dot = key.lastIndex(of: ".") else { return false }
        return modulePrefixes.contains(String(key[...dot]))
    }

    /// The notes of a reading: the wrapper prefix looked under, and the keys not read.
    func notes(_ origin: PyTorchReader.Origin) -> [String] {
        Self.wrapperNote(implied, origin: origin) + Self.unreadNote(keys.filter { !reads($0) }, wrapper: wrapper, origin: origin)
    }

    // MARK: Wrapper prefixes

    /// The prefixes training wrappers add to every key, and who adds them.
    static let wrappers: [(prefix: String, owner: String)] = [
        ("module.", "nn.DataParallel / DistributedDataParallel"), ("_orig_mod.", "torch.compile"),
    ]

    /// The wrapper prefixes every key starts with, outermost first (`["module."]`,
    /// `["_orig_mod.", "module."]`); none for a state_dict with a key outside them.
    static func wrapper(of keys: [String]) -> [String] {
        guard !keys.isEmpty else { return [] }
        var found: [String] = []
        var prefix = ""
        search: while true {
            for (component, _) in wrappers {
                let next = prefix + component
                if keys.allSatisfy({ $0.hasPrefix(next) && $0.count > next.count }) {
                    found.append(component)
                    prefix = next
                    continue search
                }
            }
            return found
        }
    }

    /// The outer part of `wrapper` that the `stated` key prefixes leave out: the shortest
    /// such that each stated prefix starts with the rest of the wrapper.
    static func implied(wrapper: [String], stated: [String]) -> String {
        for k in 0...wrapper.count where stated.allSatisfy({ $0.hasPrefix(wrapper[k...].joined()) }) {
            return wrapper[..<k].joined()
        }
        return wrapper.joined()
    }

    /// One note when keys were looked up under `implied`; none otherwise.
    static func wrapperNote(_ implied: String, origin: PyTorchReader.Origin) -> [String] {
        guard !implied.isEmpty else { return [] }
        let owners = wrappers.filter { implied.contains($0.prefix) }.map(\.owner).joined(separator: ", ")
        let subject: String
        switch origin {
        case .modelConfig: subject = "the model_config's prefix does not state it"
        case .selection: subject = "the selected prefixes do not state it"
        }
        return ["every key starts with '\(escapedForDisplay(implied))' (the prefix \(owners) adds) and \(subject): the modules were read under it"]
    }

    // MARK: Keys not read

    /// One line counting the keys not read, grouped (`module.FeatureExtraction.* 38`), or
    /// none when every key was read.
    static func unreadNote(_ unread: [String], wrapper: String, origin: PyTorchReader.Origin) -> [String] {
        guard !unread.isEmpty else { return [] }
        let groups = groups(unread, wrapper: wrapper)
        let shownGroups = 8
        let listed = groups.prefix(shownGroups).map { "\(escapedForDisplay($0.name)) \($0.count)" }.joined(separator: ", ")
            + (groups.count > shownGroups ? ", and \(groups.count - shownGroups) more" : "")
        let subject: String
        switch origin {
        case .modelConfig: subject = "the model_config's modules"
        case let .selection(prefixes): subject = "the selected modules (\(shownList(prefixes)))"
        }
        let count = unread.count == 1 ? "1 key" : "\(unread.count) keys"
        return ["\(count) outside \(subject) \(unread.count == 1 ? "was" : "were") not read (\(listed))"]
    }

    /// `keys` grouped by the wrapper and the first name after it (`module.FeatureExtraction.*`;
    /// a key with nothing after that name stands alone), in the order first seen.
    static func groups(_ keys: [String], wrapper: String) -> [(name: String, count: Int)] {
        var order: [String] = []
        var counts: [String: Int] = [:]
        for key in keys {
            let rest = key.hasPrefix(wrapper) ? key.dropFirst(wrapper.count) : Substring(key)
            let name = rest.firstIndex(of: ".").map { wrapper + rest[..<$0] + ".*" } ?? key
            if counts[name] == nil { order.append(name) }
            counts[name, default: 0] += 1
        }
        return order.map { ($0, counts[$0] ?? 0) }
    }

    // MARK: Selection by key prefix

    /// The module prefixes as given, without a trailing `.`; refused when one is empty,
    /// repeated, or lies inside another (their keys would be read twice).
    static func checkedPrefixes(_ given: [String], file: String) throws -> [String] {
        guard !given.isEmpty, given.count <= Limits.layers else {
            throw ModelError(.invalidInput, file: file, message: "a selection of modules names 1 to \(Limits.layers) key prefixes, not \(given.count)")
        }
        let prefixes = given.map { $0.hasSuffix(".") ? String($0.dropLast()) : $0 }
        for (index, prefix) in prefixes.enumerated() {
            guard !prefix.isEmpty else {
                throw ModelError(.invalidInput, file: file, message: "a module prefix is empty; name the module by its keys' prefix (SequenceModeling, rnn)")
            }
            for other in prefixes[..<index] where other == prefix || other.hasPrefix(prefix + ".") || prefix.hasPrefix(other + ".") {
                throw ModelError(.invalidInput, file: file, message: "the module prefixes '\(escapedForDisplay(other))' and '\(escapedForDisplay(prefix))' overlap; name each module once")
            }
        }
        return prefixes
    }
}
