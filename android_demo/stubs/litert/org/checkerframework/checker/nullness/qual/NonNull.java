// COMPILE-TIME STUB, never packaged (see android_demo/stubs/README.md): the checker-framework annotation on
// Interpreter's constructor parameters; kotlinc reads it by name and treats them as non-null, as with the real jar.
package org.checkerframework.checker.nullness.qual;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

@Retention(RetentionPolicy.RUNTIME)
@Target({ElementType.TYPE_USE, ElementType.TYPE_PARAMETER})
public @interface NonNull {}
