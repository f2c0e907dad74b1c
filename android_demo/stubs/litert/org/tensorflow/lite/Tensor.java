// COMPILE-TIME STUB, never packaged (see android_demo/stubs/README.md).
// Verified against tensorflow/tensorflow
//   tensorflow/lite/java/src/main/java/org/tensorflow/lite/Tensor.java (commit 1fa9397d662252891825964d87a774aa591cd3db:
//   the same public methods, then on a final class) and TensorImpl.java (commit aef1f667689b4483611892df195b69d0d100668b:
//   "final class TensorImpl implements Tensor", i.e. Tensor is an interface in current LiteRT).
package org.tensorflow.lite;

import java.nio.ByteBuffer;

public interface Tensor {

  class QuantizationParams {
    private final float scale;
    private final int zeroPoint;

    public QuantizationParams(final float scale, final int zeroPoint) {
      this.scale = scale;
      this.zeroPoint = zeroPoint;
    }

    public float getScale() {
      return scale;
    }

    public int getZeroPoint() {
      return zeroPoint;
    }
  }

  DataType dataType();

  int numDimensions();

  int numBytes();

  int numElements();

  int[] shape();

  int[] shapeSignature();

  int index();

  String name();

  QuantizationParams quantizationParams();

  ByteBuffer asReadOnlyBuffer();
}
