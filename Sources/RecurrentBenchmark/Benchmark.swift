import Foundation
import RecurrentKit

/// `rnnkit bench`: forward passes of a loaded model on random inputs, timed in process.
///
/// Untimed warm-up passes run for `warmup` seconds (at least one: idle cores take tens of
/// milliseconds to reach full speed), then `repetitions` timed passes; nothing is read or
/// written in the timed region. The work per pass is counted by `Model.forwardFLOPs`
/// (2·in·out per weight-matrix product and row).
package struct Benchmark: Sendable {
    package var batch: Int
    package var time: Int
    package var repetitions: Int
    /// Seconds of untimed passes before timing.
    package var warmup: Double
    package var threads: Int

    package init(batch: Int, time: Int, repetitions: Int, warmup: Double, threads: Int) {
        self.batch = batch
        self.time = time
        self.repetitions = repetitions
        self.warmup = warmup
        self.threads = threads
    }

    /// What a benchmark measured (`--json` prints it as one object).
    package struct Report: Encodable, Sendable {
        package var model: String
        package var batch: Int
        package var time: Int
        package var threads: Int
        package var `repeat`: Int
        /// Floating-point operations per pass.
        package var flops: Double
        package var medianSeconds: Double
        package var minSeconds: Double
        package var maxSeconds: Double
        /// GFLOP/s at the median pass.
        package var gflops: Double
        package var warmupPasses: Int
        /// Every timed pass, in order.
        package var seconds: [Double]

        enum CodingKeys: String, CodingKey {
            case model, batch, time, threads, `repeat`, flops, gflops, seconds
            case warmupPasses = "warmup_passes"
            case medianSeconds = "median_seconds", minSeconds = "min_seconds", maxSeconds = "max_seconds"
        }
    }

    /// The settings' own bounds, checked before any file is read: each count at least 1, the
    /// warm-up within 0...60 seconds, and `batch × time` input elements within
    /// `Engine.runElementLimit`. Returns the first problem, in words, or nil.
    package func problem() -> String? {
        if batch < 1 { return "--batch must be at least 1" }
        if time < 1 { return "--time must be at least 1" }
        if repetitions < 1 { return "--repeat must be at least 1" }
        if threads < 1 { return "--threads must be at least 1" }
        if !(warmup >= 0 && warmup <= 60) { return "--warmup must be between 0 and 60 seconds" }
        // The input alone holds batch × time ids or feature vectors: refused before the model
        // is read when even one value per step is over the engine's budget.
        let limit = Engine.runElementLimit
        let (steps, overflow) = batch.multipliedReportingOverflow(by: time)
        guard !overflow, steps <= limit else {
            return "--batch \(batch) × --time \(time) = \(overflow ? "more than \(Int.max)" : "\(steps)") steps, over the limit of \(limit)\(overflow ? "" : " by \(steps - limit)") input elements (Engine.runElementLimit)"
        }
        return nil
    }

    /// Times `model`: checks that every tensor of a run fits the engine's budget, makes the
    /// random input, warms up, then times `repetitions` passes.
    package func measure(_ model: LoadedModel) throws -> Report {
        let engine = try model.engine
        // Every tensor of a run (the random input included) within budget, before any is made.
        try ModelError.boundary(file: model.file, kind: .invalidInput) {
            try engine.checkRunSize(batch: batch, time: time)
        }
        let input = try randomInput(for: model)
        var seconds: [Double] = []
        var warmupPasses = 0
        try ModelError.boundary(file: model.file, kind: .invalidInput) {
            let clock = ContinuousClock()
            let warmupEnd = clock.now + .milliseconds(Int64(warmup * 1000))
            repeat {
                _ = try engine.run(input, threads: threads)
                warmupPasses += 1
            } while clock.now < warmupEnd
            for _ in 0..<repetitions {
                let start = clock.now
                _ = try engine.run(input, threads: threads)
                let elapsed = clock.now - start
                seconds.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
            }
        }
        let sorted = seconds.sorted()
        let median = Self.median(ofSorted: sorted)
        let flops = model.model.forwardFLOPs(batch: batch, time: time)
        return Report(model: model.file, batch: batch, time: time, threads: threads, repeat: repetitions, flops: flops,
                      medianSeconds: median, minSeconds: sorted[0], maxSeconds: sorted[sorted.count - 1],
                      gflops: flops / median / 1e9, warmupPasses: warmupPasses, seconds: seconds)
    }

    /// The middle value of sorted, non-empty `values` (the mean of the two middle ones for
    /// an even count).
    package static func median(ofSorted values: [Double]) -> Double {
        values.count % 2 == 1
            ? values[values.count / 2]
            : (values[values.count / 2 - 1] + values[values.count / 2]) / 2
    }

    /// Texts of vocabulary tokens (a model with a text vectorizer), random token ids below the
    /// vocabulary size, or features uniform in [-1, 1], of shape
    /// `[batch, time]` or `[batch, time, model.inputFeatures]`, from a fixed seed so that runs
    /// see the same input.
    package func randomInput(for model: LoadedModel) throws -> ModelInput {
        var generator = SeededGenerator(seed: 42)
        if let vectorizer = model.model.textVectorizer {
            // Texts of `time` vocabulary tokens (with split=None, one token each), which the
            // vectorizer's rules leave as they are.
            let words = vectorizer.tokens
            let perText = vectorizer.split == .whitespace ? time : 1
            let texts = (0..<batch).map { _ in
                (0..<perText).map { _ in words.isEmpty ? "x" : words[Int.random(in: 0..<words.count, using: &generator)] }
                    .joined(separator: " ")
            }
            return .texts(texts)
        }
        if case .embedding(let embedding) = model.model.layers.first {
            let ids = (0..<(batch * time)).map { _ in Int.random(in: 0..<embedding.vocabularySize, using: &generator) }
            return .tokens(ids: ids, batch: batch, time: time)
        }
        guard let features = model.inputFeatures else {
            throw ModelError(.unsupported, file: model.file,
                             message: "the model has no recurrent or dense layer to take its input size from")
        }
        let values = (0..<(batch * time * features)).map { _ in Float.random(in: -1...1, using: &generator) }
        return .features(Tensor(unchecked: [batch, time, features], values: values))
    }
}
