// COMPILE-TIME STUB, never packaged (see android_demo/stubs/README.md).
// Verified against tensorflow/tensorflow
//   tensorflow/lite/java/src/main/java/org/tensorflow/lite/DataType.java
//   (commit aef1f667689b4483611892df195b69d0d100668b): the constants and byteSize().
package org.tensorflow.lite;

public enum DataType {
  FLOAT32(1),
  INT32(2),
  UINT8(3),
  INT64(4),
  STRING(5),
  BOOL(6),
  INT16(7),
  INT8(9);

  private final int value;

  DataType(int value) {
    this.value = value;
  }

  public int byteSize() {
    throw new UnsupportedOperationException("compile-time stub");
  }
}
