// COMPILE-TIME STUB, never packaged (see android_demo/stubs/README.md).
// Verified against google-ai-edge/LiteRT
//   tflite/java/src/main/java/org/tensorflow/lite/InterpreterApi.java (commit e393dd5c8fdeaaac7dee13ce0d1bd4116a1b8def):
//   "public interface InterpreterApi extends AutoCloseable", its Options class (setNumThreads, setUseNNAPI,
//   setUseXNNPACK, getters) and the methods below, signatures copied; everything the app does not call is left out.
package org.tensorflow.lite;

import java.util.Map;

public interface InterpreterApi extends AutoCloseable {

  class Options {
    public Options() {}

    public Options(Options other) {}

    public Options setNumThreads(int numThreads) {
      throw new UnsupportedOperationException("compile-time stub");
    }

    public int getNumThreads() {
      throw new UnsupportedOperationException("compile-time stub");
    }

    public Options setUseNNAPI(boolean useNNAPI) {
      throw new UnsupportedOperationException("compile-time stub");
    }

    public boolean getUseNNAPI() {
      throw new UnsupportedOperationException("compile-time stub");
    }

    public Options setUseXNNPACK(boolean useXNNPACK) {
      throw new UnsupportedOperationException("compile-time stub");
    }

    public boolean getUseXNNPACK() {
      throw new UnsupportedOperationException("compile-time stub");
    }
  }

  void run(Object input, Object output);

  void runForMultipleInputsOutputs(Object[] inputs, Map<Integer, Object> outputs);

  void allocateTensors();

  void resizeInput(int idx, int[] dims);

  int getInputTensorCount();

  int getInputIndex(String opName);

  Tensor getInputTensor(int inputIndex);

  int getOutputTensorCount();

  int getOutputIndex(String opName);

  Tensor getOutputTensor(int outputIndex);

  Long getLastNativeInferenceDurationNanoseconds();

  @Override
  void close();
}
