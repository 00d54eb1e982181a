import Testing
import Foundation
import Tensor
import Rewards

@Suite struct EnsembleTests {
    @Test func ensembleCombinationsOnKnownScores() throws {
        let s: [Float] = [1, 2, 6]
        #expect(EnsembleCombine.mean.combine(s) == 3)
        #expect(EnsembleCombine.min.combine(s) == 1)
        // population std of (1, 2, 6) = sqrt(14/3)
        let std = Float((14.0 / 3.0).squareRoot())
        #expect(abs(EnsembleCombine.meanMinusStd(0.5).combine(s) - (3 - 0.5 * std)) < 1e-5)
        #expect(EnsembleCombine.meanMinusStd(0).combine(s) == 3)
        #expect(try EnsembleCombine(parsing: "mean-std:0.5") == .meanMinusStd(0.5))
        #expect(try EnsembleCombine(parsing: "min") == .min)
        for bad in ["max", "mean-std:", "mean-std:-1", "mean-std:nan", ""] {
            #expect(throws: RewardError.self) { try EnsembleCombine(parsing: bad) }
        }
    }
}
