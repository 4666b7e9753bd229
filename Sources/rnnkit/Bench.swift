import ArgumentParser
import Foundation
import RecurrentKit
import TextSafety

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time forward passes of a model on random inputs.",
        discussion: """
        Builds random inputs of shape [batch, time, features] (token ids for a model that \
        starts with an embedding), runs untimed warm-up passes for WARMUP seconds (at least \
        one), then REPEAT timed passes in this process; nothing is read or written in the \
        timed region. Prints the median, \
        minimum and maximum seconds per pass and the achieved GFLOP/s at the median, counted \
        by Model.forwardFLOPs (2·in·out per weight-matrix product and row).
        """)

    @Argument(help: "The model file.")
    var model: String

    // `.unconditional`: a value such as `-5` reaches `validate()`, which says what is wrong
    // with it, instead of being taken for an option name.
    @Option(parsing: .unconditional, help: "Sequences per pass.")
    var batch: Int = 1

    @Option(parsing: .unconditional, help: "Steps per sequence.")
    var time: Int = 256

    @Option(name: .customLong("repeat"), parsing: .unconditional, help: "Timed passes.")
    var repetitions: Int = 10

    @Option(help: ArgumentHelp("Seconds of untimed passes before timing (at least one pass).",
                               discussion: "Idle cores take tens of milliseconds to reach full speed."))
    var warmup: Double = 0.2

    @Option(parsing: .unconditional, help: "Threads a run uses (the engine's default is 1): a layer's directions, rows or units are split over them, and at small batches one-direction layers run at once.")
    var threads: Int = 1

    @Option(help: "For a Keras weights-only file: the model file (or config JSON) with its architecture.")
    var architecture: String?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard time >= 1 else { throw ValidationError("--time must be at least 1") }
        guard repetitions >= 1 else { throw ValidationError("--repeat must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard warmup >= 0, warmup <= 60 else { throw ValidationError("--warmup must be between 0 and 60 seconds") }
        // The input alone holds batch × time ids or feature vectors: refused before the model
        // is read when even one value per step is over the engine's budget.
        let limit = Engine.runElementLimit
        let (steps, overflow) = batch.multipliedReportingOverflow(by: time)
        guard !overflow, steps <= limit else {
            throw ValidationError("--batch \(batch) × --time \(time) = \(overflow ? "more than \(Int.max)" : "\(steps)") steps, over the limit of \(limit)\(overflow ? "" : " by \(steps - limit)") input elements (Engine.runElementLimit)")
        }
    }

    func run() throws {
        let (loaded, input) = try failingWithStatus2 { () throws -> (LoadedModel, ModelInput) in
            let loaded = try LoadedModel(contentsOf: model, architecture: architecture)
            // Every tensor of a run (the random input included) within budget, before any is made.
            do {
                try loaded.engine.checkRunSize(batch: batch, time: time)
            } catch let error as EngineError {
                throw ModelError(file: loaded.file, message: error.description)
            }
            return (loaded, try randomInput(for: loaded.model))
        }
        let engine = try failingWithStatus2 { try loaded.engine }
        var seconds: [Double] = []
        var warmupPasses = 0
        try failingWithStatus2 {
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
        let timings = seconds
        seconds.sort()
        let median = seconds.count % 2 == 1
            ? seconds[seconds.count / 2]
            : (seconds[seconds.count / 2 - 1] + seconds[seconds.count / 2]) / 2
        let flops = loaded.model.forwardFLOPs(batch: batch, time: time)
        let report = Report(model: model, batch: batch, time: time, threads: threads, repeat: repetitions,
                            flops: flops, medianSeconds: median, minSeconds: seconds.first!,
                            maxSeconds: seconds.last!, gflops: flops / median / 1e9, warmupPasses: warmupPasses,
                            seconds: timings)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            let shape = loaded.model.takesTokenIDs ? "[\(batch), \(time)] token ids" : "[\(batch), \(time), \(featureCount(of: loaded.model) ?? 0)] features"
            print("model: \(escapedForDisplay(model)) (\(loaded.layout.title))")
            print("input: \(shape), \(threads) thread\(threads == 1 ? "" : "s"), \(repetitions) timed passes after \(warmupPasses) warm-up pass\(warmupPasses == 1 ? "" : "es")")
            print("seconds per pass: median \(format(median)), min \(format(seconds.first!)), max \(format(seconds.last!))")
            print("work: \(format(flops / 1e9)) GFLOP per pass, \(format(report.gflops)) GFLOP/s at the median")
        }
    }

    /// What `--json` prints.
    struct Report: Encodable {
        var model: String
        var batch: Int
        var time: Int
        var threads: Int
        var `repeat`: Int
        var flops: Double
        var medianSeconds: Double
        var minSeconds: Double
        var maxSeconds: Double
        var gflops: Double
        var warmupPasses: Int
        /// Every timed pass, in order.
        var seconds: [Double]

        enum CodingKeys: String, CodingKey {
            case model, batch, time, threads, `repeat`, flops, gflops, seconds
            case warmupPasses = "warmup_passes"
            case medianSeconds = "median_seconds", minSeconds = "min_seconds", maxSeconds = "max_seconds"
        }
    }

    /// Random token ids below the vocabulary size, or features uniform in [-1, 1], from a
    /// fixed seed so that runs see the same input.
    private func randomInput(for model: Model) throws -> ModelInput {
        var generator = SeededGenerator(seed: 42)
        if case .embedding(let embedding) = model.layers.first {
            let ids = (0..<(batch * time)).map { _ in Int.random(in: 0..<embedding.vocabularySize, using: &generator) }
            return .tokens(ids: ids, batch: batch, time: time)
        }
        guard let features = featureCount(of: model) else {
            throw ValidationError("the model has no recurrent or dense layer to take its input size from")
        }
        let values = (0..<(batch * time * features)).map { _ in Float.random(in: -1...1, using: &generator) }
        return .features(Tensor(shape: [batch, time, features], values: values))
    }

    /// The features per step the model's first layer with weights expects.
    private func featureCount(of model: Model) -> Int? {
        for layer in model.layers {
            switch layer {
            case .recurrent(let recurrent): return recurrent.inputSize
            case .dense(let dense): return dense.inputSize
            case .embedding(let embedding): return embedding.dimension
            default: continue
            }
        }
        return nil
    }

    private func format(_ value: Double) -> String {
        String(format: "%.4g", value)
    }
}
