import Testing
import Foundation
import Analysis
import Tensor
import Imaging

@Suite struct TensorBoardTests {
    /// The bytes of two records written by TensorBoard's own Python writer (RecordWriter and
    /// event_pb2): the file-version event at wall time 1.5, then a summary at step 300 with the
    /// scalar 0.25 and a 3x2 image whose encoded bytes are "\x89PNG".
    @Test func eventRecordsMatchTensorBoardsOwnWriterByteForByte() {
        let expected = "1800000000000000a37f4b2209000000000000f83f1a0d627261696e2e4576656e743a322a28646c"
            + "4300000000000000b18525a00900001040fc54d94110ac022a350a180a11747261696e2f7265776172645f6d65616e15"
            + "0000803e0a190a096576616c2f67726964220c080210031803220489504e472da5fd9f"
        let bytes = TensorBoardEvents.fileVersion(wallTime: 1.5)
            + TensorBoardEvents.summary(step: 300, wallTime: 1_700_000_000.25,
                                        [.scalar("train/reward_mean", 0.25), .png("eval/grid", [0x89, 0x50, 0x4E, 0x47], width: 3, height: 2)])
        #expect(bytes.map { String(format: "%02x", $0) }.joined() == expected)
    }

    @Test func pngSizeReadsTheHeaderAndRefusesOtherBytes() throws {
        let png = try RGBImage(width: 7, height: 3, fill: (10, 20, 30)).pngData()
        #expect(TensorBoardEvents.pngSize(png)! == (7, 3))
        #expect(TensorBoardEvents.pngSize(Array(png.prefix(20))) == nil)
        #expect(TensorBoardEvents.pngSize(Array("not a png at all, but long enough".utf8)) == nil)
    }

}

