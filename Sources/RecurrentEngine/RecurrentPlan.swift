// Planning a recurrent layer's run: how its work is split over threads (`RecurrentLayerPlan`),
// which stacks run as a pipeline (`pipelineLength`), and, per group member, its units, the
// column panels of its products and the step path it takes (`MemberPlan`). Pure values:
// nothing here touches memory.

/// How one recurrent layer's work is split over threads.
///
/// A group is one direction over a range of batch rows; its `members` threads split the
/// columns of every step's product and the hidden units of its state update.
struct RecurrentLayerPlan: Equatable, Sendable {
    struct Group: Equatable, Sendable {
        var direction: Int
        var rows: Range<Int>
        var members: Int
    }
    struct Assignment: Equatable, Sendable {
        var group: Int
        var member: Int
    }
    var groups: [Group]
    /// For each thread, the group members it runs, in order.
    var work: [[Assignment]]

    /// Group members in all (`slot` numbers them).
    var slotCount: Int { groups.reduce(0) { $0 + $1.members } }

    /// A number of its own for each group member, in `0 ..< slotCount`.
    func slot(_ assignment: Assignment) -> Int {
        groups[..<assignment.group].reduce(0) { $0 + $1.members } + assignment.member
    }

    /// - `columnSplittable`: whether a step's state update for one hidden unit needs only
    ///   that unit's gates (not so for a projected LSTM or a `.beforeMatmul` GRU, whose second
    ///   product needs every unit), and the hidden size is a multiple of the panel width, so
    ///   that each member's units are whole column panels of every gate block.
    init(threads: Int, directions: Int, batch: Int, columnSplittable: Bool) {
        let threads = Swift.max(1, threads)
        groups = []
        work = []
        if threads == 1 || directions >= threads {
            groups = (0..<directions).map { Group(direction: $0, rows: 0..<batch, members: 1) }
            let workers = Swift.min(threads, directions)
            work = Array(repeating: [], count: workers)
            for g in groups.indices { work[g % workers].append(Assignment(group: g, member: 0)) }
            return
        }
        let perDirection = threads / directions
        for d in 0..<directions {
            if batch >= 8 * perDirection {
                // Row blocks in multiples of the kernel's 8 rows.
                let chunk = ((batch + perDirection - 1) / perDirection + 7) / 8 * 8
                var start = 0
                while start < batch {
                    groups.append(Group(direction: d, rows: start..<Swift.min(batch, start + chunk), members: 1))
                    work.append([Assignment(group: groups.count - 1, member: 0)])
                    start += chunk
                }
            } else if columnSplittable {
                groups.append(Group(direction: d, rows: 0..<batch, members: perDirection))
                for member in 0..<perDirection { work.append([Assignment(group: groups.count - 1, member: member)]) }
            } else {
                groups.append(Group(direction: d, rows: 0..<batch, members: 1))
                work.append([Assignment(group: groups.count - 1, member: 0)])
            }
        }
    }

    /// The plan for `layer` over `batch` rows on `threads` threads.
    init(_ layer: PreparedRecurrent, threads: Int, batch: Int) {
        self.init(threads: threads, directions: layer.directionCount, batch: batch,
                  columnSplittable: !(layer.kind == .lstm && layer.directions[0].projection != nil)
                      && !(layer.kind == .gru && layer.resetRule == .beforeMatmul)
                      && layer.hiddenSize % PackedMatrix.panelWidth == 0)
    }
}

/// Member `member`'s share of `0..<total` split into `members` parts on multiples of `granule`.
func shareOf(_ total: Int, members: Int, member: Int, granule: Int = 1) -> Range<Int> {
    guard members > 1 else { return 0..<total }
    let chunks = (total + granule - 1) / granule
    let lower = Swift.min(total, (chunks * member / members) * granule)
    let upper = Swift.min(total, (chunks * (member + 1) / members) * granule)
    return lower..<upper
}

/// The column panels of `units` of every gate block, for a `[·, gates·H]` packed matrix.
///
/// With one member (`units` is every unit) this is every panel at once; otherwise `H` is a
/// multiple of the panel width (see `RecurrentLayerPlan`), so each gate's share is whole panels.
func unitPanels(_ units: Range<Int>, hidden: Int, gates: Int, whole: Bool) -> [Range<Int>] {
    let width = PackedMatrix.panelWidth
    if whole { return [0..<((gates * hidden + width - 1) / width)] }
    return (0..<gates).map { g in
        ((g * hidden + units.lowerBound) / width)..<((g * hidden + units.upperBound) / width)
    }
}

/// How many of `layers` (consecutive recurrent layers, the first first) run as one pipeline
/// on `threads` threads over `batch` rows: 1 when they run one after the other.
///
/// A pipeline runs its layers at once, each on threads of its own, every layer's steps reading
/// the previous layer's outputs as they are written: a stack of one-direction layers at a batch
/// too small to split by rows, where the layers would otherwise split each step's units between
/// threads that meet at every step. A layer can follow the one before when both have one
/// direction, the one before returns sequences and this one runs forward (its step `t` reads
/// output `t`, which the one before writes at its step `t`, forward or `goBackwards`; not
/// `reversed`, which writes output `t` at its step `T − 1 − t`).
func pipelineLength(_ layers: ArraySlice<PreparedRecurrent>, threads: Int, batch: Int) -> Int {
    guard threads >= 2, batch < 8 * threads, let first = layers.first, first.directionCount == 1 else { return 1 }
    var length = 1
    var previous = first
    for layer in layers.dropFirst() {
        guard length < threads, previous.returnSequences, !previous.reversed, layer.directionCount == 1,
              !layer.goBackwards, !layer.reversed else { break }
        length += 1
        previous = layer
    }
    return length
}

/// How a group member computes a step's new state.
enum StepPath: Equatable {
    /// One batch row of an LSTM or `.afterMatmul` GRU without projection, in whole panels:
    /// per block of 32 units, the state product accumulates in registers and the cell
    /// arithmetic runs on them (FusedStep.swift).
    case fused
    /// The step's products over the group's rows into the gate buffer, then the cell
    /// update of the member's units (Cells.swift).
    case batched
}

/// Where a step's new state goes.
enum StepCommit: Equatable {
    /// Every step is valid (no mask) and nothing reads the old state after the update (no
    /// projection, no `.beforeMatmul` GRU): the update writes the new `h` straight into the
    /// next `h` buffer and the new `c` over `c` (each value is read before it is overwritten,
    /// in the same lane). The last emitted output is then the final `h`, set once at the end.
    case inPlace
    /// The update writes into scratch; each row then takes it or keeps its state by the mask
    /// (`GroupLoop.commit(row:...)`).
    case masked
}

/// How the members of a group meet once per step, after writing their part of the new `h`.
enum StepMeeting: Equatable {
    /// One member: nobody to wait for.
    case alone
    /// At a barrier at the end of each step.
    case afterStep
    /// A fused one-row step only marks its end; the next step's product waits for each
    /// partner's slice of `h` where it reaches it (`StepWait`).
    case insideNextProduct
}

/// One group member's share of a layer's work and the way it runs each step, decided once
/// before the time loop.
struct MemberPlan: Equatable {
    /// The hidden units whose gates, state and outputs this member computes.
    var units: Range<Int>
    /// The units of `h` it commits: `units`, or all of `R` with a projection (never split).
    var outputUnits: Range<Int>
    /// Its column panels of the input projection, the recurrent product (GRU: the r and z
    /// blocks) and GRU's `U_n` product.
    var inputPanels: [Range<Int>]
    var recurrentPanels: [Range<Int>]
    var newPanels: [Range<Int>]
    var path: StepPath
    var commit: StepCommit
    var meeting: StepMeeting

    /// - `rows`: the group's batch rows; `masked`: whether the run has a mask.
    init(_ layer: PreparedRecurrent, rows: Int, members: Int, member: Int, masked: Bool) {
        let hidden = layer.hiddenSize
        let projected = layer.directions[0].projection != nil
        let whole = members == 1
        units = shareOf(hidden, members: members, member: member, granule: PackedMatrix.panelWidth)
        outputUnits = projected ? 0..<layer.outputSize : units
        inputPanels = unitPanels(units, hidden: hidden, gates: layer.gateCount, whole: whole)
        recurrentPanels = unitPanels(units, hidden: hidden, gates: layer.kind == .gru ? 2 : layer.gateCount, whole: whole)
        newPanels = unitPanels(units, hidden: hidden, gates: 1, whole: whole)
        let gruBefore = layer.kind == .gru && layer.resetRule == .beforeMatmul
        path = rows == 1 && hidden % PackedMatrix.panelWidth == 0 && !projected && layer.extended == nil
            && (layer.kind == .lstm || (layer.kind == .gru && layer.resetRule == .afterMatmul)) ? .fused : .batched
        commit = !masked && !projected && !gruBefore ? .inPlace : .masked
        meeting = members == 1 ? .alone : path == .fused ? .insideNextProduct : .afterStep
    }
}
