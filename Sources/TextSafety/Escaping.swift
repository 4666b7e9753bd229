/// Strings that come from files (layer names, keys, attribute values, paths) reach
/// terminals, error lines and generated code. `escapedForDisplay` makes such a string safe
/// to print on one line: it can neither move the cursor, retitle or clear a terminal, nor
/// reorder the text around it, nor run on for pages.

/// The most characters of one file-derived string that a message shows.
package let displayedCharacterLimit = 200

/// True for a scalar that must never reach a terminal as itself: C0 controls (newline and
/// tab included), DEL, C1 controls, the bidirectional formatting characters and the line
/// and paragraph separators.
package func isUnsafeForDisplay(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x00...0x1F, 0x7F...0x9F: return true
    case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true
    case 0x2028, 0x2029: return true
    default: return false
    }
}

/// `text` with every unsafe scalar written as an escape (`\x1b`, `\u{202e}`) and, past
/// `limit` characters, shortened to its first `limit` with the full length noted:
/// `verylongname…(+4800 more characters)`.
package func escapedForDisplay(_ text: String, limit: Int = displayedCharacterLimit) -> String {
    var result = ""
    var shown = 0
    var total = 0
    for scalar in text.unicodeScalars {
        total += 1
        guard shown < limit else { continue }
        shown += 1
        if isUnsafeForDisplay(scalar) {
            result += scalar.value <= 0xFF
                ? "\\x" + hex(scalar.value, width: 2)
                : "\\u{" + hex(scalar.value, width: 4) + "}"
        } else {
            result.unicodeScalars.append(scalar)
        }
    }
    if total > shown {
        result += "…(+\(total - shown) more characters)"
    }
    return result
}

/// True when `text` would print as itself (nothing to escape, not too long).
package func isSafeForDisplay(_ text: String, limit: Int = displayedCharacterLimit) -> Bool {
    var count = 0
    for scalar in text.unicodeScalars {
        count += 1
        if count > limit || isUnsafeForDisplay(scalar) { return false }
    }
    return true
}

private func hex(_ value: UInt32, width: Int) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}
