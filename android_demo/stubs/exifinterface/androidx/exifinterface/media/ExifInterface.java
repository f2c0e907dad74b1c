// COMPILE-TIME STUB, never packaged (see android_demo/stubs/README.md).
// Verified against androidx/androidx
//   exifinterface/exifinterface/src/main/java/androidx/exifinterface/media/ExifInterface.java
//   (commit b6b89c66daa84b95dd842a50e66c3f1a146db40c): "public ExifInterface(@NonNull InputStream inputStream)
//   throws IOException", "public int getAttributeInt(@NonNull String tag, int defaultValue)",
//   TAG_ORIENTATION = "Orientation" and the ORIENTATION_* values 0..8 (the checked IOException matters: Kotlin
//   ignores it, but the app must catch it, and does).
package androidx.exifinterface.media;

import androidx.annotation.NonNull;
import java.io.IOException;
import java.io.InputStream;

public class ExifInterface {
  public static final String TAG_ORIENTATION = "Orientation";

  public static final int ORIENTATION_UNDEFINED = 0;
  public static final int ORIENTATION_NORMAL = 1;
  public static final int ORIENTATION_FLIP_HORIZONTAL = 2;
  public static final int ORIENTATION_ROTATE_180 = 3;
  public static final int ORIENTATION_FLIP_VERTICAL = 4;
  public static final int ORIENTATION_TRANSPOSE = 5;
  public static final int ORIENTATION_ROTATE_90 = 6;
  public static final int ORIENTATION_TRANSVERSE = 7;
  public static final int ORIENTATION_ROTATE_270 = 8;

  public ExifInterface(@NonNull InputStream inputStream) throws IOException {
    throw new UnsupportedOperationException("compile-time stub");
  }

  public int getAttributeInt(@NonNull String tag, int defaultValue) {
    throw new UnsupportedOperationException("compile-time stub");
  }
}
