import Testing
import TestSupport
import Tensor
import Model
import Flow
import Shapes

/// The batch split over worker threads: the loss, the gradient and the random stream are those
/// of one flow-matching step on the whole batch (up to the order of the sums).
@Suite struct FlowMatchingTrainerTests {
    func batch(_ m: DiT, images B: Int, rng: inout RNG) throws -> FlowMatchingBatch {
        let prompts = ["a red circle on a blue background", "two green squares on a black background", "a small pink triangle at the top left on a white background"]
        return FlowMatchingBatch(x0: rng.normals(B * m.config.pixelsPerImage, scale: 0.5),
                                 tokens: try (0..<B).flatMap { try Tokenizer.encode(prompts[$0 % prompts.count]) })
    }

    /// One step on `rows` (nil: all) by flowMatchingStep on one thread and by the trainer on
    /// `workers`: the losses, gradients and the generators' states after it.
    @Test(arguments: [(7, nil as Range<Int>?, 2), (8, nil, 3), (9, 2..<9, 2), (2, nil, 2)])
    func aSplitStepIsTheWholeBatchsStep(images B: Int, rows: Range<Int>?, workers: Int) throws {
        let m = try randomModel(seed: 11)
        var rng = RNG(seed: 3)
        let data = try batch(m, images: B, rng: &rng)
        let capacity = rows?.count ?? B
        m.grads.zero()
        var r1 = RNG(seed: 5)
        let ws = try m.makeWorkspace(batch: capacity, training: true)
        let whole = Compute(workers: 1).run {
            flowMatchingStep(model: m, ws: ws, batch: data, rng: &r1, nullProbability: 0.4, rows: rows)
        }
        let expected = m.grads.copy()

        m.grads.zero()
        var r2 = RNG(seed: 5)
        let split = try Compute(workers: workers).run {
            let trainer = try FlowMatchingTrainer(model: m, batch: capacity)
            return trainer.step(batch: data, rng: &r2, nullProbability: 0.4, rows: rows)
        }
        #expect(r1 == r2)
        #expect(abs(split - whole) <= 1e-5 * abs(whole))
        var worst: Float = 0, largest: Float = 0
        for i in 0..<m.parameterCount {
            worst = max(worst, abs(m.grads[i] - expected[i])); largest = max(largest, abs(expected[i]))
        }
        #expect(largest > 0 && worst <= 1e-4 * largest, "largest gradient \(largest), worst difference \(worst)")
    }
}
