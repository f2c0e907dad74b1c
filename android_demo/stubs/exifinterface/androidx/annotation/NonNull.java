// COMPILE-TIME STUB, never packaged (see android_demo/stubs/README.md): androidx.annotation.NonNull, as used by
// ExifInterface; kotlinc reads it by name and treats the annotated parameters as non-null, as with the real jar.
package androidx.annotation;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

@Retention(RetentionPolicy.CLASS)
@Target({ElementType.METHOD, ElementType.PARAMETER, ElementType.FIELD, ElementType.LOCAL_VARIABLE,
    ElementType.ANNOTATION_TYPE, ElementType.PACKAGE})
public @interface NonNull {}
