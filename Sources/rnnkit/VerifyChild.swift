import Foundation
import RecurrentKit
import TextSafety
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// `rnnkit verify` over many fixtures runs each case in a child process of itself, so that a
// file that makes libhdf5 fault, loop or exhaust memory ends only its own case. The protocol
// between parent and child is the command line's own: the hidden `--case-*` options
// (`Verify`), one JSON object on the child's stdout, its last stderr line (after
// `rnnkit: error: `) as the case's error. The library runs a case in process
// (`VerificationSuite.run(_:threads:)`); this file starts, bounds and reads the children.

/// Running cases each in a child process of `rnnkit verify`, and what a child prints.
enum VerifyChild {
    /// Runs every case in a child process of `executable` — at most `jobs` at once — so that
    /// a case whose file makes libhdf5 fault, loop or exhaust memory ends its own process
    /// (an `.error` result with the child's last stderr line) and the others still run.
    ///
    /// Each child is started as `executable arguments… --case-fixture F …` (the
    /// options `childArguments(for:threads:)` gives) and must print one result on stdout as
    /// `childJSON(_:)` does; it is stopped after `caseSeconds` (default `Limits.verifyCaseSeconds`), and at most
    /// `Limits.verifyCaseOutputBytes` of its stdout are kept.
    ///
    /// With `totalSeconds`, the whole run is bounded too: a child still running when that
    /// time has passed is stopped, and a case not started by then is an `.error` saying so.
    ///
    /// `report` is called once per case, in input order, as soon as the case and all before
    /// it have finished (never concurrently). The results are returned in input order.
    static func runIsolated(_ cases: [VerificationCase], jobs: Int, threads: Int = 1, executable: String,
                                   arguments: [String], caseSeconds: Double? = nil, totalSeconds: Double? = nil,
                                   report: @escaping @Sendable (Int, CaseResult) -> Void = { _, _ in }) -> [CaseResult] {
        let state = RunState(count: cases.count, report: report)
        let workers = max(1, min(jobs, Limits.verifyJobs, cases.count))
        var threadsStarted: [Thread] = []
        let done = DispatchSemaphore(value: 0)
        let caseLimit = caseSeconds ?? Limits.verifyCaseSeconds
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<workers {
            let thread = Thread {
                while let index = state.next() {
                    var seconds = caseLimit
                    var limit: String?
                    if let totalSeconds {
                        let left = totalSeconds - Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                        let total = "the run's time limit of \(String(format: "%g", totalSeconds)) s"
                        guard left > 0 else {
                            state.finish(index, .failure(cases[index], "not run: \(total) had passed"))
                            continue
                        }
                        if left < seconds { (seconds, limit) = (left, total) }
                    }
                    var result = runChild(cases[index], threads: threads, executable: executable,
                                          arguments: arguments, seconds: seconds, limit: limit)
                    if result.namedFiles == nil {
                        // The check did not say what its fixture names: a child that reads only that.
                        let left = totalSeconds.map { $0 - Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 } ?? seconds
                        result.namedFiles = namedFiles(cases[index], executable: executable, arguments: arguments,
                                                       seconds: min(seconds, left, Limits.hdf5CallSeconds + 2))
                    }
                    state.finish(index, result)
                }
                done.signal()
            }
            thread.stackSize = 1 << 20
            threadsStarted.append(thread)
            thread.start()
        }
        for _ in 0..<workers { done.wait() }
        return state.results()
    }

    /// What `verificationCase`'s fixture names, from a child that reads only its `model` and
    /// `architecture` attributes (`executable arguments… --case-names F`, printing a JSON list
    /// of paths: `Fixture.namedFiles(of:)`), for a case whose own check did not say; nil when
    /// that child does not say either (it crashes or runs out of `seconds`).
    static func namedFiles(_ verificationCase: VerificationCase, executable: String, arguments: [String],
                           seconds: Double) -> [String]? {
        guard seconds > 0, verificationCase.refusal == nil,
              let outcome = try? ChildProcess.run(executable, arguments + ["--case-names", childPath(verificationCase.fixture)],
                                                  seconds: seconds, outputLimit: Limits.verifyCaseOutputBytes,
                                                  errorLimit: Limits.verifyCaseErrorBytes),
              !outcome.timedOut, outcome.signal == nil, outcome.status == 0 else { return nil }
        return (try? StrictJSONDecoder.parse(outcome.output)) as? [String]
    }

    /// A relative name that starts with '-', as a child's argument, so it is not taken for an option.
    static func childPath(_ text: String) -> String { text.hasPrefix("-") ? "./" + text : text }

    /// The options a child process gets for `verificationCase` (after the caller's
    /// `arguments`, `verify` for rnnkit): `--case-fixture F`, and as present `--case-model`,
    /// `--case-model-by-name`, `--case-model-by-name-problem`, `--architecture`,
    /// `--case-no-architecture`, `--key`,
    /// `--atol`, `--rtol`; then `--threads`.
    static func childArguments(for verificationCase: VerificationCase, threads: Int) -> [String] {
        let path = childPath
        var result = ["--case-fixture", path(verificationCase.fixture)]
        if let model = verificationCase.model { result += ["--case-model", path(model)] }
        if let model = verificationCase.modelByName { result += ["--case-model-by-name", path(model)] }
        if let problem = verificationCase.modelByNameProblem { result += ["--case-model-by-name-problem", problem] }
        if let architecture = verificationCase.architecture { result += ["--architecture", path(architecture)] }
        if verificationCase.withoutArchitecture { result += ["--case-no-architecture"] }
        if let key = verificationCase.key { result += ["--key=" + key] }
        if let modules = verificationCase.modules { result += ["--modules=" + modules.joined(separator: ",")] }
        if let atol = verificationCase.atol { result += ["--atol", "\(atol)"] }
        if let rtol = verificationCase.rtol { result += ["--rtol", "\(rtol)"] }
        result += ["--threads", "\(threads)"]
        return result
    }

    /// Runs one case's child and turns whatever happens into a result; `limit` names the
    /// bound that `seconds` comes from when it is not the case's own.
    static func runChild(_ verificationCase: VerificationCase, threads: Int, executable: String, arguments: [String],
                         seconds: Double, limit: String? = nil) -> CaseResult {
        if verificationCase.refusal != nil { return VerificationSuite.run(verificationCase, threads: threads) }
        let start = DispatchTime.now()
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9 }
        let outcome: ChildOutcome
        do {
            outcome = try ChildProcess.run(executable, arguments + childArguments(for: verificationCase, threads: threads),
                                           seconds: seconds, outputLimit: Limits.verifyCaseOutputBytes,
                                           errorLimit: Limits.verifyCaseErrorBytes)
        } catch {
            return .failure(verificationCase, "cannot start the check: \(error)", seconds: elapsed())
        }
        // The child's error line without the prefix it prints before it (`RNNKit.exit`).
        let errorLine = outcome.lastErrorLine.map { line -> String in
            line.hasPrefix(RNNKit.errorPrefix) ? String(line.dropFirst(RNNKit.errorPrefix.count)) : line
        }
        if outcome.timedOut {
            return .failure(verificationCase, "did not finish within \(limit ?? "\(Int(seconds)) s"); stopped" + (errorLine.map { " (\($0))" } ?? ""),
                            seconds: elapsed())
        }
        if let signal = outcome.signal {
            return .failure(verificationCase, "the check crashed (signal \(signal))" + (errorLine.map { ": \($0)" } ?? ""),
                            seconds: elapsed())
        }
        if outcome.status == 0, var result = caseResult(childJSON: outcome.output, for: verificationCase) {
            result.seconds = elapsed()
            return result
        }
        if let errorLine { return .failure(verificationCase, errorLine, seconds: elapsed()) }
        return .failure(verificationCase, outcome.status == 0 ? "the check printed no result" : "the check exited with status \(outcome.status)",
                        seconds: elapsed())
    }

    /// The one JSON object a child process prints for its case (`runIsolated`): the
    /// report's case object (`VerificationReports`), the error worded as the command line
    /// words it (options as flags), and what the fixture names.
    static func childJSON(_ result: CaseResult) -> Data {
        var object = VerificationReports.jsonObject(result)
        if let error = result.modelError {
            object["error"] = escapedForDisplay(error.commandLineDescription, limit: 4000)
        }
        // For the parent only (not a report field): what the fixture names.
        object["named_files"] = result.namedFiles ?? []
        var data = VerificationReports.serialized(object)
        data.append(UInt8(ascii: "\n"))
        return data
    }

    /// A child's result for `verificationCase`: its status, error, tensors and what it
    /// used (model, architecture, key, tolerances); nil when `data` is not such an object.
    static func caseResult(childJSON data: Data, for verificationCase: VerificationCase) -> CaseResult? {
        guard let object = try? StrictJSONDecoder.parse(data) as? [String: Any],
              let statusText = object["status"] as? String, let status = CaseResult.Status(rawValue: statusText),
              let tensors = object["tensors"] as? [[String: Any]] else { return nil }
        var used = verificationCase
        used.model = object["model"] as? String ?? used.model
        used.architecture = object["architecture"] as? String
        used.key = object["key"] as? String
        used.atol = (object["atol"] as? NSNumber)?.doubleValue
        used.rtol = (object["rtol"] as? NSNumber)?.doubleValue
        var parsed: [TensorResult] = []
        for tensor in tensors {
            guard let name = tensor["name"] as? String, let shape = tensor["shape"] as? [Int],
                  let expectedShape = tensor["expected_shape"] as? [Int], let mismatches = tensor["mismatches"] as? Int
            else { return nil }
            parsed.append(TensorResult(name: name, shape: shape, expectedShape: expectedShape,
                                       maxAbsoluteError: (tensor["max_abs_error"] as? NSNumber)?.doubleValue ?? .nan,
                                       maxRelativeError: (tensor["max_rel_error"] as? NSNumber)?.doubleValue ?? .nan,
                                       mismatches: mismatches, firstMismatch: tensor["first_mismatch"] as? [Int]))
        }
        let error = (object["error"] as? String).map { escapedForDisplay($0, limit: 4000) }
        var result = CaseResult(verificationCase: used, status: status, error: status == .error ? (error ?? "failed") : nil,
                                tensors: parsed)
        result.notes = (object["notes"] as? [String] ?? []).map { escapedForDisplay($0, limit: 4000) }
        result.namedFiles = object["named_files"] as? [String]
        return result
    }
}


/// The shared progress of `VerifyChild.runIsolated`: the next case to start, the results so far, and
/// the next one to report in input order.
private final class RunState: @unchecked Sendable {
    private let lock = NSLock()
    private var started = 0
    private var reported = 0
    private var slots: [CaseResult?]
    private let report: @Sendable (Int, CaseResult) -> Void

    init(count: Int, report: @escaping @Sendable (Int, CaseResult) -> Void) {
        slots = Array(repeating: nil, count: count)
        self.report = report
    }

    func next() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard started < slots.count else { return nil }
        started += 1
        return started - 1
    }

    /// Stores a result and reports every finished one not yet reported, in order; the lock
    /// is held while reporting so that lines never interleave or go out of order.
    func finish(_ index: Int, _ result: CaseResult) {
        lock.lock()
        defer { lock.unlock() }
        slots[index] = result
        while reported < slots.count, let next = slots[reported] {
            report(reported, next)
            reported += 1
        }
    }

    func results() -> [CaseResult] {
        lock.lock()
        defer { lock.unlock() }
        return slots.compactMap { $0 }
    }
}

/// What a child process did.
struct ChildOutcome {
    var status: Int32
    var signal: Int32?
    var timedOut: Bool
    var output: Data
    var lastErrorLine: String?
}

/// One child process with bounded output and a time limit.
enum ChildProcess {
    /// Starts `executable arguments`, reads its stdout and stderr together (`poll`), keeping
    /// at most `outputLimit` and `errorLimit` bytes (the rest is read and dropped so the
    /// child never blocks on a full pipe), and kills it (`SIGKILL`) past `seconds`, whether
    /// or not it has closed its output.
    static func run(_ executable: String, _ arguments: [String], seconds: Double, outputLimit: Int,
                    errorLimit: Int) throws -> ChildOutcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // The parent's copies of the write ends must close, or the reads never see the end.
        try? out.fileHandleForWriting.close()
        try? err.fileHandleForWriting.close()
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, seconds) * 1e9)
        var streams: [(descriptor: Int32, limit: Int, data: Data, open: Bool)] = [
            (out.fileHandleForReading.fileDescriptor, outputLimit, Data(), true),
            (err.fileHandleForReading.fileDescriptor, errorLimit, Data(), true),
        ]
        var timedOut = false
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while streams.contains(where: \.open) {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else {
                timedOut = true
                kill(process.processIdentifier, SIGKILL)
                break
            }
            var descriptors = streams.filter(\.open).map { pollfd(fd: $0.descriptor, events: Int16(POLLIN), revents: 0) }
            let wait = Int32(min(1000, (deadline - now) / 1_000_000 + 1))
            let ready = poll(&descriptors, nfds_t(descriptors.count), wait)
            if ready < 0 && errno != EINTR { break }
            guard ready > 0 else { continue }
            for polled in descriptors where polled.revents != 0 {
                guard let index = streams.firstIndex(where: { $0.descriptor == polled.fd }) else { continue }
                let count = buffer.withUnsafeMutableBytes { read(polled.fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 {
                    streams[index].open = false
                    continue
                }
                let room = max(0, streams[index].limit - streams[index].data.count)
                streams[index].data.append(contentsOf: buffer[..<min(count, room)])
            }
        }
        // A child may close its output and go on running: the deadline holds until it exits.
        while !timedOut, process.isRunning {
            guard DispatchTime.now().uptimeNanoseconds < deadline else {
                timedOut = true
                kill(process.processIdentifier, SIGKILL)
                break
            }
            usleep(5_000)
        }
        process.waitUntilExit()
        let errorText = String(decoding: streams[1].data, as: UTF8.self)
        let lastLine = errorText.split(whereSeparator: \.isNewline).last.map(String.init)
        let signal: Int32? = process.terminationReason == .uncaughtSignal && !timedOut ? process.terminationStatus : nil
        return ChildOutcome(status: process.terminationStatus, signal: signal, timedOut: timedOut,
                            output: streams[0].data, lastErrorLine: lastLine)
    }
}
