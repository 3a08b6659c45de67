# opencv.js white-list for the phone viewer's tracker (viewer_api/static/viewer/tracker.js, pose.js).
# Format: OpenCV's platforms/js/opencv_js.config.py (exec'd by modules/js/generator/embindgen.py, which
# provides makeWhiteList). Used by scripts/build-opencv-js.sh; keep it to what the viewer calls.
#
# Always present without listing (modules/js/src/core_bindings.cpp + helpers.js): cv.Mat (+ .data/.data32F/
# .data64F/.rows/.delete, Mat.zeros), cv.matFromArray, CV_* type constants, cv.Size, cv.Scalar,
# cv.TermCriteria, cv.KeyPointVector, cv.DMatchVectorVector, and every enum constant of the built modules
# (NORM_HAMMING, RANSAC, SOLVEPNP_IPPE, SOLVEPNP_ITERATIVE, TermCriteria_COUNT/EPS ...).

core = {
    '': [],
    'Algorithm': [],  # base class of Feature2D and DescriptorMatcher: must be registered for ORB/BFMatcher
}

imgproc = {
    '': [
        'fillConvexPoly',           # tracker.js: mask of the page quad
        'getPerspectiveTransform',  # pose.js: page mm -> px homography
        'goodFeaturesToTrack',      # tracker.js: seeds optical-flow points
    ],
}

video = {
    '': ['calcOpticalFlowPyrLK'],   # tracker.js: frame-to-frame tracking
}

features2d = {
    'Feature2D': ['detectAndCompute'],  # ORB re-detection
    'ORB': ['create'],                  # `new cv.ORB(nfeatures)` (create is bound as the JS constructor)
    'DescriptorMatcher': ['knnMatch'],  # BFMatcher.knnMatch + ratio test
    'BFMatcher': ['create'],            # `new cv.BFMatcher(cv.NORM_HAMMING, false)`
}

calib3d = {
    '': [
        'findHomography',  # tracker.js: RANSAC fit of marker -> frame
        'solvePnP',        # pose.js: IPPE (ITERATIVE fallback)
        'Rodrigues',       # pose.js: rvec -> R
    ],
}

white_list = makeWhiteList([core, imgproc, video, features2d, calib3d])
