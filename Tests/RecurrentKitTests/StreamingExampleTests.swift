import Foundation
import HDF5
import XCTest
import TestSupport
@testable import RecurrentKit

/// The streaming example of the README and the DocC Streaming article, run as written on
/// `fixtures/pytorch/char_lstm.h5`: greedy text generation one step at a time, checked against
/// the greedy decoding real torch computed (the fixture's `/greedy`).
final class StreamingExampleTests: XCTestCase {
    let path = fixture("pytorch/char_lstm.h5")
    let fixturePath = fixture("pytorch/char_lstm.fixture.h5")

    func testGreedyGenerationMatchesTorch() throws {
        let torchPicks = try greedyRows()
        // --- Streaming example begins ---
        // A character model: Embedding → LSTM → Linear, the next character's logits per step.
        let model = try LoadedModel(contentsOf: path)
        let alphabet = Array(" abcdefghijklmnopqrstuvwxyz")   // a character's id is its index
        let stream = try model.makeStream(batch: 1)

        var ids = "hello".map { alphabet.firstIndex(of: $0)! }
        var text = ""
        for _ in 0..<8 {
            // The chunk's logits [1, steps, 27]; the last step's pick the next character.
            let logits = try stream.step(.tokens(ids: ids, batch: 1, time: ids.count))
            let last = Array(logits.values.suffix(alphabet.count))
            let next = last.indices.max { last[$0] < last[$1] }!
            text.append(alphabet[next])
            ids = [next]                       // fed back: one step, the state carried
        }
        print(text)                            // jkkkvkjk
        print(stream.states[0].h.shape)        // [1, 1, 16]: [directions, batch, hidden]
        try stream.reset()                     // zeros again, for another prompt
        // --- Streaming example ends ---
        let prompts = try prompts(alphabet)
        XCTAssertEqual(prompts.first, "hello", "the example's prompt is the fixture's first")
        XCTAssertEqual(text, decode(torchPicks[0], alphabet))
        XCTAssertEqual(stream.states[0].h.values.allSatisfy { $0 == 0 }, true, "reset gives zeros")
        XCTAssertEqual(model.recurrentLayers.first?.hiddenSize, 16)

        // Every prompt of the fixture, on the same stream after reset: torch's picks, and the
        // prompt's logits are torch's within the default tolerance.
        let expected = try XCTUnwrap(Fixture(contentsOf: fixturePath).expected.first { $0.name == "output" }?.tensor)
        for (row, prompt) in prompts.enumerated() {
            try stream.reset()
            let promptIDs = prompt.map { alphabet.firstIndex(of: $0)! }
            let logits = try stream.step(.tokens(ids: promptIDs, batch: 1, time: promptIDs.count))
            let width = expected.shape[1] * expected.shape[2]
            let torchLogits = try Tensor(shape: [1] + expected.shape.dropFirst(),
                                         values: Array(expected.values[row * width ..< (row + 1) * width]))
            XCTAssertTrue(Comparison(name: "output", actual: logits, expected: torchLogits, atol: 1e-5, rtol: 1e-4).passed, prompt)
            var picks: [Int] = []
            var last = Array(logits.values.suffix(alphabet.count))
            for step in 0..<torchPicks[row].count {
                let next = last.indices.max { last[$0] < last[$1] }!
                picks.append(next)
                guard step + 1 < torchPicks[row].count else { break }
                last = try stream.step(.tokens(ids: [next], batch: 1, time: 1)).values
            }
            XCTAssertEqual(picks, torchPicks[row], "prompt '\(prompt)'")
        }
    }

    /// The DocC Streaming article shows the code the test above runs, line for line (with
    /// the fixture's path written out).
    func testTheArticleShowsTheTestedCode() throws {
        func lines(_ text: Substring) -> [String] {
            text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        let source = try String(contentsOfFile: #filePath, encoding: .utf8)
        let begin = try XCTUnwrap(source.range(of: "// --- Streaming example begins ---\n"))
        let end = try XCTUnwrap(source.range(of: "// --- Streaming example ends ---"))
        let tested = lines(source[begin.upperBound..<end.lowerBound]).map {
            $0.replacingOccurrences(of: "LoadedModel(contentsOf: path)", with: "LoadedModel(contentsOf: \"fixtures/pytorch/char_lstm.h5\")")
        }
        let article = try String(contentsOfFile: fixturesFolder.deletingLastPathComponent()
            .appendingPathComponent("Sources/RecurrentKit/RecurrentKit.docc/Streaming.md").path, encoding: .utf8)
        let heading = try XCTUnwrap(article.range(of: "### Generating text"))
        let open = try XCTUnwrap(article.range(of: "```swift\n", range: heading.upperBound..<article.endIndex))
        let close = try XCTUnwrap(article.range(of: "```", range: open.upperBound..<article.endIndex))
        XCTAssertGreaterThan(tested.count, 10)
        XCTAssertEqual(lines(article[open.upperBound..<close.lowerBound]), tested)
    }

    /// The stream's step-by-step outputs are one run's over the prompt and the picks.
    func testStepsEqualOneRun() throws {
        let model = try LoadedModel(contentsOf: path)
        let picks = try greedyRows()[0]
        let prompt = try prompts(Array(" abcdefghijklmnopqrstuvwxyz"))[0].map { Array(" abcdefghijklmnopqrstuvwxyz").firstIndex(of: $0)! }
        let sequence = prompt + picks
        let whole = try model.run(.tokens(ids: sequence, batch: 1, time: sequence.count))
        let stream = try model.makeStream(batch: 1)
        var values = try stream.step(.tokens(ids: prompt, batch: 1, time: prompt.count)).values
        for id in picks { values += try stream.step(.tokens(ids: [id], batch: 1, time: 1)).values }
        XCTAssertEqual(values, whole.output.values)
        XCTAssertEqual(stream.states, whole.finalStates)
    }

    /// torch's greedy picks, `[batch, steps]`, one row per prompt.
    private func greedyRows() throws -> [[Int]] {
        let root = try HDF5File.open(fixturePath).root
        XCTAssertEqual(try root.kind(of: "greedy"), .dataset, "the fixture lost /greedy")
        let dataset = try root.dataset("greedy")
        XCTAssertEqual(dataset.shape.count, 2)
        let values = try dataset.readIntegers().map { Int($0) }
        return (0..<dataset.shape[0]).map { Array(values[$0 * dataset.shape[1] ..< ($0 + 1) * dataset.shape[1]]) }
    }

    /// The fixture's prompts as text.
    private func prompts(_ alphabet: [Character]) throws -> [String] {
        guard case let .tokens(ids, batch, time) = try Fixture(contentsOf: fixturePath).input else {
            XCTFail("token ids expected")
            return []
        }
        return (0..<batch).map { decode(Array(ids[$0 * time ..< ($0 + 1) * time]), alphabet) }
    }

    private func decode(_ ids: [Int], _ alphabet: [Character]) -> String {
        String(ids.map { alphabet[$0] })
    }
}
