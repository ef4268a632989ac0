/* slate_picture: the slate's still picture at one size (slate.c's helper,
 * not for other modules). */
#ifndef GALARELAY_SLATE_PICTURE_H
#define GALARELAY_SLATE_PICTURE_H

#include <libavutil/frame.h>

/* A width x height YUV420P frame: the image at `image_path` letterboxed
 * into it, or (image_path "" or unreadable, logged) a card with `title`
 * and "节目马上回来 / We'll be right back" drawn with a CJK font (DejaVu,
 * then no text, as fallbacks, logged). The caller frees it. NULL on error. */
AVFrame *slate_picture(const char *title, const char *image_path, int width, int height);

#endif
