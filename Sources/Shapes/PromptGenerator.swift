import Tensor

/// Draws random prompts from the grammar (for pretraining data and for the prompt lists).
public struct PromptGenerator: Sendable {
    /// Task mix: relative weights of single, two objects, counting, position.
    public var weights: [Task: Float] = [.single: 0.4, .twoObjects: 0.2, .counting: 0.2, .position: 0.2]
    /// Prompts never drawn (for example the held-out evaluation list), by canonical text.
    public var excluded: Set<String> = []

    public init(excluding: Set<String> = []) { excluded = excluding }

    public func sample(rng: inout RNG) -> PromptSpec {
        while true {
            let spec = draw(task: pickTask(&rng), rng: &rng)
            if !excluded.contains(spec.text) { return spec }
        }
    }

    func pickTask(_ rng: inout RNG) -> Task {
        let total = Task.allCases.reduce(0) { $0 + (weights[$1] ?? 0) }
        var u = rng.uniform() * total
        for t in Task.allCases {
            u -= weights[t] ?? 0
            if u < 0 { return t }
        }
        return .single
    }

    public func draw(task: Task, rng: inout RNG) -> PromptSpec {
        let colors = ShapeColor.allCases, shapes = ShapeKind.allCases
        let bg = colors[rng.int(colors.count)]
        func objColor(excluding ex: [ShapeColor]) -> ShapeColor {
            while true { let c = colors[rng.int(colors.count)]; if !ex.contains(c) { return c } }
        }
        func obj(_ ex: [ShapeColor]) -> ObjectSpec { ObjectSpec(color: objColor(excluding: ex), shape: shapes[rng.int(shapes.count)]) }
        switch task {
        case .single:
            var o = obj([bg])
            if rng.uniform() < 0.6 { o.size = ShapeSize.allCases[rng.int(2)] }
            if rng.uniform() < 0.5 { o.placement = Placement.allCases[rng.int(Placement.allCases.count)] }
            return PromptSpec(task: .single, objects: [o], background: bg)
        case .twoObjects:
            let a = obj([bg])
            var b = obj([bg])
            while b == a { b = obj([bg]) }
            return PromptSpec(task: .twoObjects, objects: [a, b], background: bg)
        case .counting:
            return PromptSpec(task: .counting, objects: [obj([bg])], count: 1 + rng.int(4), background: bg)
        case .position:
            let a = obj([bg])
            var b = obj([bg])
            while b == a { b = obj([bg]) }
            return PromptSpec(task: .position, objects: [a, b], relation: Relation.allCases[rng.int(4)], background: bg)
        }
    }
}
