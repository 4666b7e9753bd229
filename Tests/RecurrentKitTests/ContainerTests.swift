import Foundation
import HDF5
import XCTest
import TestSupport
@testable import RecurrentKit

/// A layout reads named tensors from any container: the PyTorch layout reads a state_dict
/// from a flat in-memory container (as a safetensors or `torch.save` container will give
/// it) exactly as it reads the HDF5 file.
final class ContainerTests: XCTestCase {
    func testPyTorchLayoutReadsAFlatContainerAsItReadsHDF5() throws {
        for name in ["pytorch/lstm_basic.h5", "pytorch/gru_bidir_2layer_lengths.h5", "pytorch/clf_embed_rnn_mean.h5"] {
            let path = fixture(name)
            guard FileManager.default.fileExists(atPath: path) else { XCTFail("missing fixture \(name)"); continue }
            let hdf5 = HDF5Container(try HDF5File.open(path))
            let flat = try FlatContainer(copying: hdf5)
            XCTAssertTrue(flat.names.allSatisfy { !$0.contains("/") }, name)
            XCTAssertEqual(try PyTorchReader.read(flat).model, try PyTorchReader.read(hdf5).model, name)
        }
    }

    func testHDF5ContainerDescribesTensors() throws {
        let container = HDF5Container(try HDF5File.open(fixture("keras/tfk_stacked_bilstm.h5")))
        let kernel = try XCTUnwrap(container.tensor("model_weights/bidirectional/bidirectional/forward_lstm/lstm_cell/kernel:0"))
        XCTAssertEqual(kernel.dtype, TensorDType(kind: .float, bits: 32, byteOrder: .little))
        XCTAssertEqual(kernel.count, kernel.shape.reduce(1, *))
        XCTAssertEqual(try container.kind(of: "model_weights"), .group)
        XCTAssertNil(try container.kind(of: "no/such/path"))
        XCTAssertNil(try container.tensor("no/such/path"))
        XCTAssertEqual(try container.stringAttribute("keras_version", at: ""), "2.21.0")
        XCTAssertEqual(try container.scoped(to: "model_weights").location, "/model_weights")
    }
}

/// Dotted keys, no groups, one root attribute: the shape of a safetensors file.
private struct FlatContainer: TensorContainer {
    let file = "memory"
    let location = ""
    private var tensors: [String: (shape: [Int], values: [Float])] = [:]
    private var attributes: [String: String] = [:]
    var names: [String] { tensors.keys.sorted() }

    init(copying source: HDF5Container) throws {
        for name in try source.tensorNames(below: "") {
            let stored = try XCTUnwrap(source.tensor(name))
            tensors[name.replacingOccurrences(of: "/", with: ".")] = (stored.shape, try stored.readFloats())
        }
        attributes["model_config"] = try source.stringAttribute("model_config", at: "")
    }

    func scoped(to path: String) throws -> TensorContainer { throw ModelError(file: file, path: path, message: "no groups") }
    func tensorNames(below path: String) throws -> [String] { path.isEmpty ? names : [] }
    func tensor(_ path: String) throws -> NamedTensor? {
        guard let (shape, values) = tensors[path] else { return nil }
        return NamedTensor(name: path, location: path, shape: shape, count: values.count,
                           dtype: TensorDType(kind: .float, bits: 32, byteOrder: .little), compressed: false,
                           readFloats: { values }, readColumns: { _ in [] })
    }
    func kind(of path: String) throws -> ContainerEntryKind? { tensors[path] == nil ? nil : .tensor }
    func memberNames(of path: String) throws -> [String] { path.isEmpty ? names : [] }
    func stringAttribute(_ name: String, at path: String) throws -> String? { path.isEmpty ? attributes[name] : nil }
    func stringListAttribute(_ name: String, at path: String) throws -> [String]? { nil }
    func hasAttribute(_ name: String, at path: String) throws -> Bool { try stringAttribute(name, at: path) != nil }
}
