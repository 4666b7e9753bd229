// A vocabulary's tokens in two flat arrays, and a lookup table over their bytes.

/// Tokens (UTF-8 byte strings) one after another in one buffer, with the offset where each
/// ends: about a byte per token byte plus 4 per token, where `[String]` costs 16 bytes a
/// token and a heap object for each one longer than 15 bytes, and `[[UInt8]: Int]` about 80.
/// A vocabulary file of 12.96 M four-character tokens (64.8 MB) is 117 MB here.
///
/// A collection of `String`s (each decoded from its bytes when read); ``withBytes(at:_:)``
/// reads the bytes themselves. Equal when the tokens are equal byte for byte.
package struct TokenList: RandomAccessCollection, Sendable, Equatable, ExpressibleByArrayLiteral {
    /// The tokens' bytes, one after another.
    private var storage: [UInt8] = []
    /// Token `i` is `storage[bounds[first + i] ..< bounds[first + i + 1]]`.
    private var bounds: [UInt32] = [0]
    /// Tokens removed from the front (``removeFirst(_:)``), whose bounds stay.
    private var first = 0

    /// The most bytes all tokens may hold together (offsets are 32-bit).
    package static let maximumBytes = Int(UInt32.max)

    package init() {}

    /// - Precondition: the tokens hold at most ``maximumBytes`` bytes together.
    package init(_ tokens: some Sequence<String>) {
        for token in tokens { append(utf8: token.utf8) }
    }

    package init(arrayLiteral tokens: String...) {
        self.init(tokens)
    }

    /// Room for `tokens` tokens of `bytes` bytes in all.
    package mutating func reserveCapacity(tokens: Int, bytes: Int) {
        storage.reserveCapacity(bytes)
        bounds.reserveCapacity(tokens + 1)
    }

    /// Adds a token.
    /// - Precondition: the tokens then hold at most ``maximumBytes`` bytes together.
    package mutating func append(utf8 bytes: some Collection<UInt8>) {
        storage.append(contentsOf: bytes)
        precondition(storage.count <= Self.maximumBytes, "a TokenList holds at most 4 GiB")
        bounds.append(UInt32(truncatingIfNeeded: storage.count))
    }

    /// Adds a token from a buffer (not generic: called per line of a file from another module).
    /// - Precondition: the tokens then hold at most ``maximumBytes`` bytes together.
    package mutating func append(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        storage.append(contentsOf: bytes)
        precondition(storage.count <= Self.maximumBytes, "a TokenList holds at most 4 GiB")
        bounds.append(UInt32(truncatingIfNeeded: storage.count))
    }

    /// Removes the first `k` tokens, copying nothing (their bytes stay in the buffer, unused).
    package mutating func removeFirst(_ k: Int) {
        precondition((0...count).contains(k), "removing more tokens than there are")
        first += k
    }

    /// Removes the last `k` tokens.
    package mutating func removeLast(_ k: Int) {
        precondition((0...count).contains(k), "removing more tokens than there are")
        bounds.removeLast(k)
        storage.removeLast(storage.count - Int(bounds[bounds.count - 1]))
    }

    package var startIndex: Int { 0 }
    package var endIndex: Int { bounds.count - 1 - first }

    /// Token `position` as a string (its bytes decoded; they are UTF-8 when the list was
    /// made from strings or checked text).
    package subscript(position: Int) -> String {
        withBytes(at: position) { String(decoding: $0, as: UTF8.self) }
    }

    /// Calls `body` with the bytes of token `position`.
    package func withBytes<R>(at position: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        precondition(indices.contains(position), "token position out of range")
        let range = Int(bounds[first + position]) ..< Int(bounds[first + position + 1])
        return try storage.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[range])) }
    }

    /// The UTF-8 length of token `position`.
    package func byteCount(at position: Int) -> Int {
        precondition(indices.contains(position), "token position out of range")
        return Int(bounds[first + position + 1] - bounds[first + position])
    }

    /// All tokens' bytes together.
    package var totalBytes: Int { Int(bounds[bounds.count - 1] - bounds[first]) }

    package static func == (lhs: TokenList, rhs: TokenList) -> Bool {
        guard lhs.count == rhs.count, lhs.totalBytes == rhs.totalBytes else { return false }
        let (left, right) = (lhs.bounds[lhs.first], rhs.bounds[rhs.first])
        for position in 0 ..< lhs.count
        where lhs.bounds[lhs.first + position + 1] - left != rhs.bounds[rhs.first + position + 1] - right {
            return false
        }
        return lhs.storage[Int(left) ..< Int(left) + lhs.totalBytes]
            .elementsEqual(rhs.storage[Int(right) ..< Int(right) + rhs.totalBytes])
    }
}

/// Token bytes → position in a ``TokenList``: an open-addressing hash table (linear probing,
/// at most 3/4 full) of 32-bit positions and an 8-bit tag of each one's hash, hashed with
/// Swift's `Hasher`, whose seed is random per process, so no file can choose tokens that
/// collide. A token's bytes are compared only when the tags agree. 5 bytes a slot, 6.7 at
/// most per token (12.96 M tokens: 2^25 slots, 168 MB).
package struct TokenIndex: Sendable {
    /// 0 for an empty slot, else the position + 1.
    private var slots: [UInt32]
    /// The top 8 bits of each filled slot's hash.
    private var tags: [UInt8]
    private var mask: Int

    /// A first duplicate: the positions of two tokens with the same bytes.
    package struct Duplicate: Error {
        package var first: Int
        package var second: Int
    }

    /// Indexes every token of `tokens`.
    /// - Throws: ``Duplicate`` for the first token whose bytes an earlier one has.
    /// - Precondition: `tokens.count < 2^32 − 1`.
    package init(_ tokens: TokenList) throws(Duplicate) {
        precondition(tokens.count < Int(UInt32.max), "a TokenIndex holds fewer than 2^32 - 1 tokens")
        var capacity = 8
        while capacity / 4 * 3 < tokens.count { capacity *= 2 }
        var slots = [UInt32](repeating: 0, count: capacity)
        var tags = [UInt8](repeating: 0, count: capacity)
        let mask = capacity - 1
        // Tokens go in batches: their hashes are computed first, then their home slots read
        // once in a loop without branches, so the processor waits for those cache misses
        // together rather than one after another (a table of millions of slots is far larger
        // than the caches; inserting one token at a time spent most of its time waiting).
        let batch = 64
        var hashes = [Int](repeating: 0, count: batch)
        var start = 0
        while start < tokens.count {
            let end = min(start + batch, tokens.count)
            for position in start ..< end {
                hashes[position - start] = tokens.withBytes(at: position) { Self.hash($0) }
            }
            var touched: UInt32 = 0
            for offset in 0 ..< end - start {
                let home = hashes[offset] & mask
                touched |= slots[home] | UInt32(tags[home])
            }
            withExtendedLifetime(touched) {}
            for position in start ..< end {
                let hash = hashes[position - start]
                let tag = Self.tag(hash)
                var slot = hash & mask
                while slots[slot] != 0 {
                    if tags[slot] == tag {
                        let other = Int(slots[slot]) - 1
                        let same = tokens.withBytes(at: position) { bytes in tokens.withBytes(at: other) { Self.same($0, bytes) } }
                        if same { throw Duplicate(first: other, second: position) }
                    }
                    slot = (slot + 1) & mask
                }
                slots[slot] = UInt32(position + 1)
                tags[slot] = tag
            }
            start = end
        }
        self.slots = slots
        self.tags = tags
        self.mask = mask
    }

    /// The position in `tokens` (the list this index was made from) of the token with
    /// these bytes, or nil.
    package func position(of bytes: UnsafeBufferPointer<UInt8>, in tokens: TokenList) -> Int? {
        let hash = Self.hash(bytes)
        let tag = Self.tag(hash)
        var slot = hash & mask
        while slots[slot] != 0 {
            if tags[slot] == tag {
                let position = Int(slots[slot]) - 1
                if tokens.withBytes(at: position, { Self.same($0, bytes) }) { return position }
            }
            slot = (slot + 1) & mask
        }
        return nil
    }

    private static func same(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        a.count == b.count && a.elementsEqual(b)
    }

    private static func tag(_ hash: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: UInt(bitPattern: hash) >> (UInt.bitWidth - 8))
    }

    private static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var hasher = Hasher()
        hasher.combine(bytes: UnsafeRawBufferPointer(bytes))
        return hasher.finalize()
    }
}
