import RecurrentEngine

/// Bounds on what a file or the command line can make rnnkit read, allocate or compute.
///
/// Every size that comes from a file (a shape, a unit count, a member's inflated size, a
/// config's length) or from the command line is checked against one of these, with
/// overflow-safe arithmetic, before the work or the allocation it would cause. An error
/// that hits a bound names it and says by how much it was exceeded (`Limits.excess`).
/// Together they keep one hostile file under 1 GiB of memory and a few seconds of work.
package enum Limits {
    /// Bytes of one JSON document read from a file: a Keras `model_config` or `config.json`,
    /// a `metadata.json`, a PyTorch-side `model_config`, an architecture given as a
    /// model's `architecture`. Keras configs of real recurrent models are a few tens of KB.
    package static let configJSONBytes = 16 << 20

    /// Keys and values (counted as `{`, `[`, `,` and `:` outside strings) in one JSON
    /// document, checked by `jsonItems(in:)` before it is parsed: parsed JSON costs about
    /// 1.6 KB of memory per item (7 MB of JSON with 400,000 items took 644 MB), far more than
    /// its bytes, so the byte bound alone would allow gigabytes. 2^18 items keep a parse
    /// near 400 MB; a full Keras 3 LSTM layer's config has about 40.
    package static let configJSONItems = 1 << 18

    /// Levels of nesting in one JSON document (`StrictJSON`, a recursive reader): what
    /// `JSONSerialization` allowed. Keras configs nest about 10 deep; a safetensors header
    /// needs 3 and is read with a bound of 32.
    package static let jsonNesting = 512

    /// Layers in one model config (Keras's `layers` list, a `model_config`'s modules).
    /// Real recurrent models have tens; every layer costs a weight lookup and a summary.
    package static let layers = 10_000

    /// Bytes one `.keras` archive member may inflate to, counted as it inflates (the
    /// archive's own size fields are claims, not facts). Bounds `model.weights.h5`.
    package static let archiveMemberBytes = 768 << 20

    /// Bytes of one safetensors file, read whole before its header is trusted: the largest
    /// model `parameters` allows as float32 (256 MiB) and a header of `configJSONBytes`.
    /// Tensors are decoded one at a time from it, so reading stays well under 1 GiB.
    package static let safetensorsBytes = parameters * 4 + configJSONBytes + 8

    /// The largest one size a config may declare: units, hidden and input sizes, vocabulary,
    /// embedding width, steps of an input shape, features after a Flatten (2^24). Far above
    /// any recurrent model's, and small enough that a product of two of them cannot
    /// overflow and that a JSON number this large is still an exact integer.
    package static let dimension = 1 << 24

    /// Weights of one model, all tensors together (2^26 floats = 256 MiB as float32; a
    /// 2-layer bidirectional LSTM of 1200 units fits). They are counted from the declared
    /// shapes before any value is read, so a small compressed file cannot make rnnkit
    /// allocate gigabytes: the weights, the engine's packed copy and a run stay under 1 GiB.
    package static let parameters = 1 << 26

    /// Floats one run may hold in any one activation (batch × time × width), and elements of
    /// a benchmark's input (batch × time): the engine's budget
    /// (`Engine.runElementLimit`, 2^26 floats = 256 MiB per tensor).
    package static let runElements = Engine.runElementLimit

    /// Characters of one name (a layer or module name) a config may hold: names become
    /// HDF5 paths, Python identifiers and lines of output.
    package static let nameCharacters = 4096

    /// Bytes of one `torch.save` file, read whole before its zip directory is trusted: a
    /// checkpoint with a model's weights and an optimizer's moments (a state_dict of
    /// `parameters` float32 weights is 256 MiB; Adam's two moments triple it).
    package static let torchFileBytes = 768 << 20

    /// Bytes of the storages one `torch.save` state_dict uses, together, read from the
    /// archive into memory once each: `parameters` float32 weights. With the file itself
    /// (`torchFileBytes`) a read stays near 1 GiB.
    package static let torchStorageBytes = parameters * 4

    /// Members of one zip archive (a `torch.save` file, a `.keras` archive, model or
    /// architecture), checked against the count its end record declares before any entry is
    /// read: a `torch.save` file has one per storage and a few records, a `.keras` archive a
    /// handful. Each costs a few hundred bytes of directory entry once read, so a small file
    /// of empty members cannot make rnnkit list millions.
    package static let archiveMembers = 1 << 18

    /// Bytes of a `torch.save` file's `data.pkl` (or of a bare pickle examined before it is
    /// refused): the pickle describes tensors in about 150 bytes each, so 16 MiB holds
    /// 100,000 of them; the values are in the storages.
    package static let torchPickleBytes = 16 << 20

    /// Values one pickle may hold at once: the stack, the memo and every tuple, list and dict
    /// item together, each a few tens of bytes (2^21 stay near 100 MB). A state_dict costs
    /// about 20 per tensor.
    package static let pickleValues = 1 << 21

    /// Opcodes one pickle may execute: a state_dict runs about 40 per tensor.
    package static let pickleOperations = 1 << 22

    /// How deep tuples, lists and dicts may nest in one pickle: a checkpoint with an
    /// optimizer's state nests about 6 deep.
    package static let pickleNesting = 64

    /// Texts one `/texts` dataset may hold (the batch of a text model's run), counted from
    /// its declared shape before anything is read.
    package static let texts = 1 << 16

    /// Bytes of one text in `/texts` (1 MiB: a long document; a review is a few KB).
    package static let textBytes = 1 << 20

    /// Bytes of all texts in `/texts` together (64 MiB), checked from the sizes HDF5 reports
    /// before the strings are read. Vectorized, they become at most half as many token ids.
    package static let textsBytes = 1 << 26

    /// Bytes of a Keras text vectorizer's vocabulary file in a `.keras` archive
    /// (`assets/…/vocabulary.txt`): a vocabulary of `dimension` tokens of 8 bytes would be 150 MiB,
    /// real ones (tens of thousands of words) are well under 1 MiB.
    package static let vocabularyBytes = 64 << 20

    /// Bytes of one verification manifest (JSON or YAML), read whole before it is
    /// parsed. A case is a line or two; a manifest of `verifyCases` cases fits.
    package static let manifestBytes = 1 << 20

    /// Nodes (scalars, lists, maps, each visit counted) one manifest may hold. YAML anchors
    /// and aliases are refused before parsing (an alias repeats its anchor's whole subtree, so
    /// a few hundred bytes of nested aliases stand for billions of nodes); this bounds what
    /// is left, JSON included. A manifest entry is about 15.
    package static let manifestNodes = 100_000

    /// Cases one verification run takes, from its manifest and folders together.
    package static let verifyCases = 100_000

    /// Child processes a verification run over many cases runs at once (`rnnkit verify`'s jobs).
    package static let verifyJobs = 64

    /// Seconds one case of `rnnkit verify` may take in its child process before it is
    /// stopped and reported as an error (the largest model `parameters` allows runs in tens
    /// of seconds; each HDF5 call inside has its own `hdf5CallSeconds`).
    package static let verifyCaseSeconds: Double = 600

    /// Bytes of a case's child process output kept: its one JSON result on stdout (a few
    /// hundred bytes per tensor), and its stderr, of which the last line is the error.
    package static let verifyCaseOutputBytes = 1 << 20
    package static let verifyCaseErrorBytes = 64 << 10

    /// How far `value` exceeds `limit`, for messages: `"over the limit of 16777216 by 5"`.
    package static func excess(_ value: Int, over limit: Int) -> String {
        "over the limit of \(limit) by \(value - limit)"
    }

    /// How far the product of `factors` exceeds `limit`, exactly when it fits in an `Int`:
    /// `"100000 × 100000 × 8 = 80000000000, over the limit of 67108864 by 79932891136"`.
    package static func productExcess(_ factors: [Int], over limit: Int) -> String {
        let text = factors.map(String.init).joined(separator: " × ")
        var result = 1
        for factor in factors {
            let (next, overflow) = result.multipliedReportingOverflow(by: factor)
            guard !overflow else {
                let approximate = factors.reduce(1.0) { $0 * Double($1) }
                return "\(text) ≈ \(approximate), over the limit of \(limit)"
            }
            result = next
        }
        return "\(text) = \(result), " + excess(result, over: limit)
    }

    /// `factors` multiplied, or nil when the product overflows or exceeds `limit`.
    package static func product(_ factors: [Int], within limit: Int) -> Int? {
        var result = 1
        for factor in factors {
            guard factor >= 0 else { return nil }
            let (next, overflow) = result.multipliedReportingOverflow(by: factor)
            guard !overflow, next <= limit else { return nil }
            result = next
        }
        return result
    }

    /// The keys and values of JSON `text`, counted without parsing it (`configJSONItems`):
    /// the structural characters `{`, `[`, `,` and `:` outside strings. Counting stops once
    /// past `limit`, so the scan costs at most one pass over the bytes.
    package static func jsonItems(in text: String, limit: Int = configJSONItems) -> Int {
        var count = 0
        var inString = false
        var escaped = false
        for byte in text.utf8 {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["), UInt8(ascii: ","), UInt8(ascii: ":"):
                count += 1
                if count > limit { return count }
            default: break
            }
        }
        return count
    }

    /// Refuses JSON `text` over `configJSONBytes` or `configJSONItems` before it is parsed;
    /// the message says which bound and by how much (the item count as far as it was taken).
    package static func checkJSONSize(_ text: String) -> String? {
        let bytes = text.utf8.count
        guard bytes <= configJSONBytes else {
            return "is \(bytes) bytes of JSON, \(excess(bytes, over: configJSONBytes)) (Limits.configJSONBytes)"
        }
        let items = jsonItems(in: text)
        guard items <= configJSONItems else {
            return "holds more than \(configJSONItems) JSON keys and values (Limits.configJSONItems); refused before parsing"
        }
        return nil
    }

    /// Seconds one call into libhdf5 may run before the command line gives up on the file
    /// (exit 2, one line). A hostile file can make libhdf5 loop for ever inside one read;
    /// a real read of the largest dataset `Limits.parameters` allows, gzip-compressed, takes
    /// a few seconds. Installed by the command line only; a library user keeps control.
    package static let hdf5CallSeconds: Double = 8

    /// Bytes one call into libhdf5 may add to the process's data (768 MiB): libhdf5 sizes
    /// its own buffers from the file before any check of ours runs, and a hostile file can
    /// make it allocate gigabytes. The largest dataset read `Limits.parameters` allows is a
    /// third of this. Command line only, like the watchdog.
    package static let hdf5CallBytes = 768 << 20
}
