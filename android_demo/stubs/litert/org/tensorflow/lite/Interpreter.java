// COMPILE-TIME STUB, never packaged (see android_demo/stubs/README.md).
// Verified against tensorflow/tensorflow
//   tensorflow/lite/java/src/main/java/org/tensorflow/lite/Interpreter.java (commit 6b1457f11d28486051cd7876700837fe4eee238c):
//   "public final class Interpreter extends InterpreterImpl implements InterpreterApi", its public constructors
//   Interpreter(File), Interpreter(File, Options), Interpreter(ByteBuffer), Interpreter(ByteBuffer, Options), and
//   Interpreter.Options, whose setters return Interpreter.Options (setNumThreads, setUseNNAPI, setUseXNNPACK).
//   The real class inherits run / getInputTensor / getOutputTensor / close from the package-private InterpreterImpl,
//   which implements them for InterpreterApi; here they are declared directly, with InterpreterApi's signatures.
package org.tensorflow.lite;

import java.io.File;
import java.nio.ByteBuffer;
import java.util.Map;
import org.checkerframework.checker.nullness.qual.NonNull;

public final class Interpreter implements InterpreterApi {

  public static class Options extends InterpreterApi.Options {
    public Options() {}

    public Options(InterpreterApi.Options options) {}

    @Override
    public Options setNumThreads(int numThreads) {
      throw new UnsupportedOperationException("compile-time stub");
    }

    @Override
    public Options setUseNNAPI(boolean useNNAPI) {
      throw new UnsupportedOperationException("compile-time stub");
    }

    @Override
    public Options setUseXNNPACK(boolean useXNNPACK) {
      throw new UnsupportedOperationException("compile-time stub");
    }
  }

  public Interpreter(@NonNull File modelFile) {
    throw new UnsupportedOperationException("compile-time stub");
  }

  public Interpreter(@NonNull File modelFile, Options options) {
    throw new UnsupportedOperationException("compile-time stub");
  }

  public Interpreter(@NonNull ByteBuffer byteBuffer) {
    throw new UnsupportedOperationException("compile-time stub");
  }

  public Interpreter(@NonNull ByteBuffer byteBuffer, Options options) {
    throw new UnsupportedOperationException("compile-time stub");
  }

  @Override
  public void run(Object input, Object output) {
    throw new UnsupportedOperationException("compile-time stub");
  }

  @Override
  public void runForMultipleInputsOutputs(Object[] inputs, Map<Integer, Object> outputs) {
    throw new UnsupportedOperationException("compile-time stub");
  }

  @Override
  public void allocateTensors() {
    throw new UnsupportedOperationException("compile-time stub");
  }

  @Override
  public void resizeInput(int idx, int[] dims) {
    throw new UnsupportedOperationException("compile-time stub");
  }

  @Override
  public int getInputTensorCount() {
    throw new UnsupportedOperationException("compile-time stub");
  }

  @Override
  public int getInputIndex(String opName) {
    throw new UnsupportedOperationException("compile-time stub");
  }

  @Override
  public Tensor getInputTensor(int inputIndex) {
    throw new UnsupportedOperationException("compile-time stub");
  }

  @Override
  public int getOutputTensorCount() {
    throw new UnsupportedOperationException("compile-time stub");
  }

  @Override
  public int getOutputIndex(String opName) {
    throw new UnsupportedOperationException("compile-time stub");
  }

  @Override
  public Tensor getOutputTensor(int outputIndex) {
    throw new UnsupportedOperationException("compile-time stub");
  }

  @Override
  public Long getLastNativeInferenceDurationNanoseconds() {
    throw new UnsupportedOperationException("compile-time stub");
  }

  @Override
  public void close() {
    throw new UnsupportedOperationException("compile-time stub");
  }
}
