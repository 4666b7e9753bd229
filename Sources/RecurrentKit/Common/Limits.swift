/// Bounds on what a file or the command line can make rnnkit read, allocate or compute.
///
/// Every size that comes from a file (a shape, a unit count, a member's inflated size, a
/// config's length) or from the command line is checked against one of these, with
/// overflow-safe arithmetic, before the work or the allocation it would cause. An error
/// that hits a bound names it and says by how much it was exceeded.
package enum Limits {
    /// Bytes of one JSON document read from a file: a Keras `model_config` or `config.json`,
    /// a `metadata.json`, a PyTorch-side `model_config`, an architecture given with
    /// `--architecture`. Keras configs of real recurrent models are a few tens of KB.
    package static let configJSONBytes = 16 << 20

    /// Layers in one model config (Keras's `layers` list, a `model_config`'s modules).
    package static let layers = 10_000

    /// Bytes one `.keras` archive member may inflate to, counted as it inflates (the
    /// archive's own size fields are claims, not facts). Bounds `model.weights.h5`.
    package static let archiveMemberBytes = 768 << 20
}
