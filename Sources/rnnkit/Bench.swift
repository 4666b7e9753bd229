import ArgumentParser
import CPUFeatures
import Foundation
import RecurrentBenchmark
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

    @OptionGroup var threads: ThreadsOption
    @OptionGroup var architecture: ArchitectureOption
    @OptionGroup var output: JSONOption

    private var benchmark: Benchmark {
        Benchmark(batch: batch, time: time, repetitions: repetitions, warmup: warmup, threads: threads.threads)
    }

    func validate() throws {
        if let problem = benchmark.problem() { throw ValidationError(problem) }
    }

    func run() throws {
        let loaded = try LoadedModel(contentsOf: model, architecture: architecture.architecture, key: architecture.key,
                                     modules: architecture.moduleList, weightsMatching: architecture.weightsMatching)
        printNotes(loaded.notes)
        let report = try benchmark.measure(loaded)
        if output.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(BuildReport(report: report)), as: UTF8.self))
            return
        }
        let threads = report.threads
        let shape = loaded.takesTokenIDs ? "[\(batch), \(time)] token ids" : "[\(batch), \(time), \(loaded.inputFeatures ?? 0)] features"
        print("model: \(escapedForDisplay(model)) (\(loaded.layout.title))")
        print("input: \(shape), \(threads) thread\(threads == 1 ? "" : "s"), \(repetitions) timed passes after \(report.warmupPasses) warm-up pass\(report.warmupPasses == 1 ? "" : "es")")
        print("seconds per pass: median \(format(report.medianSeconds)), min \(format(report.minSeconds)), max \(format(report.maxSeconds))")
        print("work: \(format(report.flops / 1e9)) GFLOP per pass, \(format(report.gflops)) GFLOP/s at the median")
        print("build: \(BuildCPU.summary)")
    }

    private func format(_ value: Double) -> String {
        String(format: "%.4g", value)
    }
}

/// `bench --json`: the report's fields and what the binary was built for — `cpu_level`
/// ("AVX-512", "AVX2", "x86-64 baseline", "arm64 NEON"), `fma` (fused multiply-adds) and
/// `cpu_features` (the features the build may execute) — in one object.
private struct BuildReport: Encodable {
    let report: Benchmark.Report

    enum CodingKeys: String, CodingKey {
        case cpuLevel = "cpu_level", fma, cpuFeatures = "cpu_features"
    }

    func encode(to encoder: Encoder) throws {
        try report.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(BuildCPU.level, forKey: .cpuLevel)
        try container.encode(BuildCPU.fusedMultiplyAdd, forKey: .fma)
        try container.encode(BuildCPU.requiredFeatures.names, forKey: .cpuFeatures)
    }
}
