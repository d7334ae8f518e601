// wavllm._wavllm: the research binding of docs/model.md §9 (numpy in and out).
// Audio is a path (str / os.PathLike) or a 1-D C-contiguous float32 numpy array at 16 kHz;
// any other array is a ValueError naming the problem (float64 included: converting silently
// would also accept int16 PCM-scaled data or a wrong rate without a word, so the caller says
// astype(np.float32) explicitly). Every compute call releases the GIL, so several Python
// threads can share one Model; wavllm::Error becomes wavllm.Error (a RuntimeError).
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <ATen/ATen.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "wavllm/audio/audio.h"
#include "wavllm/audio/vad.h"
#include "wavllm/core/config.h"
#include "wavllm/core/error.h"
#include "wavllm/core/runtime.h"
#include "wavllm/pipeline/quantize.h"
#include "wavllm/pipeline/stages.h"
#include "wavllm/pipeline/model.h"
#include "wavllm/pipeline/scheduler.h"
#include "wavllm/pipeline/segments.h"

namespace py = pybind11;

namespace {

// Python text from engine bytes: decoded text may end inside a multi-byte character only when the
// engine breaks its contract, and a UnicodeDecodeError there would lose the whole result.
py::str to_py_str(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

std::string array_shape(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// The samples of a float32 numpy array, validated; ValueError names what is wrong.
std::vector<float> samples_from_array(const py::array& a) {
  if (!py::isinstance<py::array_t<float>>(a))  // native-endian float32 (a '>f4' array is not)
    throw py::value_error("audio samples must be a float32 array (got " + std::string(py::str(a.dtype())) +
                          "); convert with samples.astype(numpy.float32)");
  if (a.ndim() != 1)
    throw py::value_error("audio samples must be 1-D mono at 16 kHz (got shape " + array_shape(a) +
                          "); mix the channels down first");
  if (a.size() == 0) throw py::value_error("audio samples are empty");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error("audio samples must be C-contiguous (got a strided view); "
                          "use numpy.ascontiguousarray(samples)");
  wavllm::check_audio_length(a.size());  // before the copy: three hours of samples are 690 MB
  std::vector<float> out(static_cast<size_t>(a.size()));
  std::memcpy(out.data(), a.data(), out.size() * sizeof(float));
  return out;
}

std::string type_name(const py::object& o) { return py::str(py::type::of(o).attr("__name__")); }

// A str or os.PathLike (pathlib.Path) as a path string; nullopt for anything else.
std::optional<std::string> as_path(const py::object& o) {
  if (!py::isinstance<py::str>(o) && !py::hasattr(o, "__fspath__")) return std::nullopt;
  py::object p = py::module_::import("os").attr("fspath")(o);
  if (!py::isinstance<py::str>(p)) throw py::type_error("paths must be str or os.PathLike of str, not bytes");
  return p.cast<std::string>();
}

// The path of an `audio` argument that is not an array; a TypeError for anything else.
std::string audio_path(const py::object& audio) {
  if (const auto path = as_path(audio)) return *path;
  throw py::type_error("audio must be a file path or a float32 numpy array at 16 kHz (got " + type_name(audio) + ")");
}

// `audio` is a path or a float32 array; a path is decoded (and resampled) without the GIL.
std::vector<float> audio_samples(const py::object& audio) {
  if (py::isinstance<py::array>(audio)) return samples_from_array(audio.cast<py::array>());
  const std::string path = audio_path(audio);
  py::gil_scoped_release nogil;
  return wavllm::audio::load_mono_16k(path);
}

// A copy: results never alias engine memory (cached prompt scales, weights).
template <typename T>
py::array_t<T> to_numpy(const at::Tensor& t) {
  at::Tensor c = t.to(at::kCPU, c10::CppTypeToScalarType<T>::value).contiguous();
  std::vector<py::ssize_t> shape(c.sizes().begin(), c.sizes().end());
  py::array_t<T> out(shape);
  std::memcpy(out.mutable_data(), c.data_ptr<T>(), static_cast<size_t>(c.numel()) * sizeof(T));
  return out;
}

template <typename T>
py::array_t<T> to_numpy(const std::vector<T>& v) {
  py::array_t<T> out(static_cast<py::ssize_t>(v.size()));
  if (!v.empty()) std::memcpy(out.mutable_data(), v.data(), v.size() * sizeof(T));
  return out;
}

py::list to_numpy_list(const std::vector<at::Tensor>& ts) {
  py::list out;
  for (const auto& t : ts) out.append(to_numpy<float>(t));
  return out;
}

py::tuple prompt_ids_tuple(const wavllm::decoder::PromptIds& p) {
  return py::make_tuple(py::cast(p.left), py::cast(p.right), py::cast(p.orig));
}

py::dict timings_dict(const wavllm::StageTimings& t) {
  py::dict d;
  for (const auto& [stage, seconds] : t.items()) d[stage] = seconds;
  return d;
}

// A str is one stop string; otherwise a sequence of them.
std::vector<std::string> stop_strings(const py::object& stop) {
  if (py::isinstance<py::str>(stop)) return {stop.cast<std::string>()};
  try {
    return stop.cast<std::vector<std::string>>();
  } catch (const py::cast_error&) {
    throw py::type_error("stop must be a string or a list of strings");
  }
}

class PyModel {
 public:
  PyModel(const py::object& path_like, const std::string& device, const std::string& dtype, std::optional<int> threads,
          std::optional<double> whisper_margin) {
    const auto path = as_path(path_like);
    if (!path) throw py::type_error("path must be a model directory (str or os.PathLike), not " + type_name(path_like));
    if (threads && *threads < 0)
      throw py::value_error("threads must be >= 0 (got " + std::to_string(*threads) + "); 0 or None uses every core");
    auto opt = wavllm::ModelOptions::parse(device, dtype, threads.value_or(0));
    opt.whisper_margin_seconds = whisper_margin;
    py::gil_scoped_release nogil;
    model_ = wavllm::Model::load(*path, opt);
  }

  const wavllm::Model& get() const { return *model_; }
  std::shared_ptr<const wavllm::Model> shared() const { return model_; }

  // options: a GenerationOptions (None: the model's config.json defaults); each keyword that is
  // not None is then set on a copy of it by its field name, through the class's own attributes.
  wavllm::GenerationOptions options_with(const char* method, const py::object& options, const py::kwargs& overrides) const {
    py::object chosen = options.is_none() ? py::cast(model_->generation_options())
                                          : py::cast(options.cast<wavllm::GenerationOptions>());
    const py::object property = py::module_::import("builtins").attr("property");
    for (const auto& [key, value] : overrides) {
      const std::string name = py::str(key);
      if (!py::isinstance(py::getattr(py::type::of(chosen), name.c_str(), py::none()), property))
        throw py::type_error(std::string(method) + "() got an unexpected keyword argument '" + name + "'");
      if (!value.is_none()) chosen.attr(name.c_str()) = value;
    }
    return chosen.cast<wavllm::GenerationOptions>();
  }

  py::object generate(const py::object& audio, const std::string& instruction, const py::object& options,
                      const py::object& on_text, const py::kwargs& overrides) const {
    const auto opt = options_with("generate", options, overrides);
    if (!on_text.is_none() && !PyCallable_Check(on_text.ptr())) throw py::type_error("on_text must be callable or None");
    wavllm::DecodedAudio input;
    if (py::isinstance<py::array>(audio)) {
      input.samples = samples_from_array(audio.cast<py::array>());  // no decoding: audio stage 0
    } else {
      const auto path = audio_path(audio);
      py::gil_scoped_release nogil;
      input = wavllm::DecodedAudio::load(path);
    }

    // Runs on the generating thread once per text piece: it takes the GIL back to call the user's
    // function and to let Ctrl-C stop a long generation (the Python exception propagates out).
    wavllm::decoder::TextCallback callback = [&on_text](const std::string& piece) {
      py::gil_scoped_acquire gil;
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
      if (!on_text.is_none()) on_text(to_py_str(piece));
    };
    wavllm::GenerationResult r;
    {
      py::gil_scoped_release nogil;
      r = model_->generate(input, instruction, opt, callback);
    }
    return py::cast(std::move(r));
  }

 private:
  std::shared_ptr<wavllm::Model> model_;
};

// Model.segments(): the pieces of speech of one recording, decoded one per next() without the GIL.
class PySegments {
 public:
  PySegments(const PyModel& model, const py::object& audio, const std::string& instruction, double max_segment,
             int vad_aggressiveness, int encoder_batch, const py::object& options, const py::kwargs& overrides) {
    const auto opt = model.options_with("segments", options, overrides);
    wavllm::audio::VadOptions vad;
    vad.max_piece_seconds = max_segment;
    vad.aggressiveness = vad_aggressiveness;
    std::vector<float> samples = audio_samples(audio);
    py::gil_scoped_release nogil;
    run_ = std::make_unique<wavllm::SegmentedRun>(model.shared(), std::move(samples), instruction, opt, vad, encoder_batch);
  }
  wavllm::Segment next() {
    std::optional<wavllm::Segment> s;
    {
      py::gil_scoped_release nogil;
      s = run_->next();
    }
    if (!s) throw py::stop_iteration();
    return std::move(*s);
  }
  const wavllm::SegmentedRun& run() const { return *run_; }

 private:
  std::unique_ptr<wavllm::SegmentedRun> run_;
};

// The module's exception classes (set once at import), for errors handed back as values.
struct ErrorClasses {
  py::object error, argument, resource;
};
ErrorClasses& error_classes() {
  static ErrorClasses* classes = new ErrorClasses;  // never destroyed: Python owns the objects
  return *classes;
}

// The Python exception instance (not raised) of a C++ failure, of the class it would raise as.
py::object exception_object(const std::exception_ptr& e) {
  const ErrorClasses& c = error_classes();
  try {
    std::rethrow_exception(e);
  } catch (const wavllm::ArgumentError& x) {
    return c.argument(to_py_str(x.what()));
  } catch (const wavllm::ResourceError& x) {
    return c.resource(to_py_str(x.what()));
  } catch (const wavllm::Error& x) {
    return c.error(to_py_str(x.what()));
  } catch (const std::exception& x) {
    return py::module_::import("builtins").attr("RuntimeError")(to_py_str(x.what()));
  }
}

// Model.generate_many(): (audio, instruction) requests decoded together by the server's
// continuous-batching scheduler, yielded in order; up to 2 x parallel decoded from their files
// ahead. A request that fails yields its exception instead of a result and the others go on.
class PyBatch {
 public:
  PyBatch(const PyModel& model, const py::iterable& requests, int parallel, const wavllm::GenerationOptions& opt)
      : opt_(opt), window_(2 * size_t(parallel)) {
    if (opt.num_beams != 1)
      throw wavllm::ArgumentError("generate_many decodes greedily or by sampling: num_beams must be 1, got " +
                                  std::to_string(opt.num_beams));
    for (const py::handle item : requests) {
      const py::tuple pair = py::reinterpret_borrow<py::object>(item).cast<py::tuple>();
      if (pair.size() != 2) throw py::value_error("each request is an (audio, instruction) pair");
      audio_.push_back(py::reinterpret_borrow<py::object>(pair[0]));
      instructions_.push_back(pair[1].cast<std::string>());
    }
    scheduler_ = std::make_unique<wavllm::Scheduler>(model.shared(), wavllm::SchedulerOptions{parallel, parallel, 1});
  }

  size_t size() const { return audio_.size(); }

  py::object next() {
    if (returned_ == audio_.size()) throw py::stop_iteration();
    while (pending_.size() < window_ && submitted_ < audio_.size()) submit_next();
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    ++returned_;
    if (p.error) return exception_object(p.error);
    try {
      wavllm::GenerationResult r;
      {
        py::gil_scoped_release nogil;
        r = p.ticket->wait();
      }
      r.timings.audio = p.audio_seconds;
      r.real_time_factor = r.timings.total() / r.audio_seconds;
      return py::cast(std::move(r));
    } catch (...) {
      return exception_object(std::current_exception());
    }
  }

 private:
  struct Pending {
    std::shared_ptr<wavllm::Ticket> ticket;
    std::exception_ptr error;
    double audio_seconds = 0;
  };

  void submit_next() {
    const size_t i = submitted_++;
    Pending p;
    try {
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<float> samples = audio_samples(audio_[i]);
      p.audio_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      // The window never holds more than the scheduler's batch and queue: a refusal is a bug.
      p.ticket = scheduler_->submit({std::move(samples), instructions_[i], opt_});
      if (!p.ticket) throw wavllm::Error("the batch scheduler refused a request within its window");
    } catch (const py::error_already_set&) {
      throw;  // a Python-side problem with the request itself (wrong type): raised now
    } catch (...) {
      p.error = std::current_exception();
    }
    pending_.push_back(std::move(p));
  }

  wavllm::GenerationOptions opt_;
  size_t window_;
  std::vector<py::object> audio_;
  std::vector<std::string> instructions_;
  std::unique_ptr<wavllm::Scheduler> scheduler_;
  std::deque<Pending> pending_;
  size_t submitted_ = 0, returned_ = 0;
};

py::object to_python(const at::Tensor& t) { return to_numpy<float>(t); }
py::object to_python(const std::vector<at::Tensor>& ts) { return to_numpy_list(ts); }

// A Model method of 16 kHz samples as a Python method of `audio`, run without the GIL.
template <typename R>
auto audio_method(R (wavllm::Model::*method)(const std::vector<float>&) const) {
  return [method](const PyModel& pm, const py::object& audio) {
    std::vector<float> samples = audio_samples(audio);
    R out;
    {
      py::gil_scoped_release nogil;
      out = (pm.get().*method)(samples);
    }
    return to_python(out);
  };
}

}  // namespace

PYBIND11_MODULE(_wavllm, m) {
  m.doc() = "wavllm C++ engine (see the wavllm package docstring)";
  // The one mapping of the engine's error kinds (wavllm/core/error.h) to Python: Error for bad
  // input, ArgumentError (also a ValueError) for an argument outside its rule, ResourceError
  // for a request beyond a limit of the model or the machine.
  static py::exception<wavllm::Error> error(m, "Error", PyExc_RuntimeError);
  auto subclass = [&m](const char* name, py::tuple bases, const char* doc) {
    PyObject* type = PyErr_NewExceptionWithDoc((std::string("wavllm._wavllm.") + name).c_str(), doc, bases.ptr(), nullptr);
    if (!type) throw py::error_already_set();
    py::object cls = py::reinterpret_steal<py::object>(type);
    m.attr(name) = cls;
    return cls;
  };
  static py::object argument_error = subclass("ArgumentError", py::make_tuple(error, py::handle(PyExc_ValueError)),
                                              "An argument or option outside its rule (also a ValueError).");
  static py::object resource_error = subclass("ResourceError", py::make_tuple(error),
                                              "A valid request beyond a limit of the model or the machine.");
  error.attr("__doc__") = "A wavllm failure: a bad file, weights or config (itself), or one of its subclasses.";
  error_classes() = {error, argument_error, resource_error};
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const wavllm::ArgumentError& e) {
      PyErr_SetString(argument_error.ptr(), e.what());
    } catch (const wavllm::ResourceError& e) {
      PyErr_SetString(resource_error.ptr(), e.what());
    } catch (const wavllm::Error& e) {
      error(e.what());
    } catch (const std::filesystem::filesystem_error& e) {
      // A symlink loop or a permission problem in a path: the user's input, not a bug.
      error(wavllm::printable(e.what()).c_str());
    } catch (const c10::Error& e) {
      // A LibTorch failure is an engine bug or an exhausted device, never the user's input.
      error((std::string("LibTorch error: ") + e.what_without_backtrace()).c_str());
    }
  });

  m.def(
      "load_audio",
      [](const py::object& path) {
        if (py::isinstance<py::array>(path)) throw py::type_error("load_audio takes a file path");
        return to_numpy(audio_samples(path));
      },
      py::arg("path"),
      "Decodes an audio file (WAV, FLAC, OGG, MP3...) to float32 mono 16 kHz, resampled like SoX "
      "`rate 16000` and mixed down after resampling, as the reference does.");

  m.def(
      "log_mel",
      [](const py::object& audio, int n_mels) {
        std::vector<float> samples = audio_samples(audio);
        wavllm::audio::LogMel mel;
        {
          py::gil_scoped_release nogil;
          mel = wavllm::audio::whisper_log_mel(samples.data(), samples.size(), n_mels);
        }
        py::array_t<float> values({mel.parts, mel.n_mels, wavllm::audio::kFramesPerPart});
        std::memcpy(values.mutable_data(), mel.values.data(), mel.values.size() * sizeof(float));
        return py::make_tuple(values, to_numpy(mel.valid_frames));
      },
      py::arg("audio"), py::arg("n_mels") = 80,
      "Whisper log-mel per 30-s part: (float32 [parts, n_mels, 3000], int64 [parts] valid frames).");

  m.def(
      "tensor_spec",
      [](const std::string& text) {
        return wavllm::model_spec(wavllm::ModelConfig::from_json_text(text, "config.json")).to_json();
      },
      py::arg("json_text"),
      "The tensors a model of this config.json text has, as the layers declare them (JSON, as "
      "`wavllm spec` prints it). The converter reads config sizes and checks checkpoints with it.");

  m.def(
      "quantize_model",
      [](const std::string& in_dir, const std::string& out_dir, const std::string& format) {
        py::gil_scoped_release nogil;
        wavllm::quantize_model(in_dir, out_dir, format);
      },
      py::arg("in_dir"), py::arg("out_dir"), py::arg("format") = "q8_0",
      "`wavllm quantize`: a float model directory to a new quantized one (docs/kernels.md).");

  m.def(
      "voice_activity",
      [](const py::object& audio, int aggressiveness) {
        const std::vector<float> samples = audio_samples(audio);
        std::vector<bool> frames;
        {
          py::gil_scoped_release nogil;
          frames = wavllm::audio::voice_frames(samples.data(), samples.size(), aggressiveness);
        }
        py::array_t<bool> out(static_cast<py::ssize_t>(frames.size()));
        for (size_t i = 0; i < frames.size(); ++i) out.mutable_data()[i] = frames[i];
        return out;
      },
      py::arg("audio"), py::arg("aggressiveness") = 2,
      "WebRTC's speech decision for each 10-ms frame of `audio` (bool array): what Model.segments starts from.");
  m.def(
      "speech_pieces",
      [](const py::object& audio, double max_segment, int aggressiveness, const py::object& frames) {
        const std::vector<float> samples = audio_samples(audio);
        wavllm::audio::VadOptions vad;
        vad.max_piece_seconds = max_segment;
        vad.aggressiveness = aggressiveness;
        // Another detector's decisions (eval/vad_accuracy.py measures Silero VAD through the
        // same planner): one per whole 10-ms frame.
        std::optional<std::vector<bool>> given;
        if (!frames.is_none()) {
          const auto decisions = py::array_t<bool, py::array::c_style | py::array::forcecast>::ensure(frames);
          const size_t expected = samples.size() / wavllm::audio::kVadFrameSamples;
          if (!decisions || decisions.ndim() != 1 || size_t(decisions.size()) != expected)
            throw py::value_error("frames: one bool per whole 10-ms frame of the audio (" + std::to_string(expected) + ")");
          given.emplace(decisions.data(), decisions.data() + decisions.size());
        }
        std::vector<wavllm::audio::Span> pieces;
        {
          py::gil_scoped_release nogil;
          pieces = given ? wavllm::audio::plan_pieces(wavllm::audio::speech_regions(*given, vad), samples.data(),
                                                      samples.size(), vad)
                         : wavllm::audio::speech_pieces(samples.data(), samples.size(), vad);
        }
        py::list out;
        for (const auto& p : pieces)
          out.append(py::make_tuple(double(p.begin) / wavllm::audio::kSampleRate, double(p.end) / wavllm::audio::kSampleRate));
        return out;
      },
      py::arg("audio"), py::arg("max_segment") = 30.0, py::arg("aggressiveness") = 2, py::arg("frames") = py::none(),
      "The pieces Model.segments decodes, as (start, end) seconds; with `frames` (one bool per 10-ms "
      "frame, from another detector) the pieces the planner makes of those decisions instead.");
  m.attr("__version__") = WAVLLM_VERSION;
  m.def(
      "canonical_dtype", [](const std::string& name) { return wavllm::dtype_label(wavllm::parse_dtype(name)); },
      py::arg("name"),
      "The dtype a name means (float32 for 'fp32', 'f32', 'float'; bfloat16 for 'bf16'; float16 for 'fp16', "
      "'f16', 'half'): the one table of dtype names, shared by the CLI, the binding and the converter.");
  m.def("translation_languages", &wavllm::translation_languages,
        "The target languages translate_instruction (and `wavllm translate --to`) accepts.");
  m.def("transcribe_instruction", &wavllm::transcribe_instruction,
        "The instruction of the speech-recognition task (`wavllm transcribe`), as the reference writes it.");
  m.def("translate_instruction", &wavllm::translate_instruction, py::arg("language"),
        "The speech-translation instruction into `language` (one of translation_languages(), any case); "
        "ArgumentError for another.");
  m.def("speaker_verification_instruction", &wavllm::speaker_verification_instruction,
        "The speaker-verification instruction (`wavllm verify-speaker`).");
  m.def("emotion_instruction", &wavllm::emotion_instruction, "The emotion-recognition instruction (`wavllm emotion`).");
  m.def("question_instruction", &wavllm::question_instruction, py::arg("question"),
        "A spoken-question-answering instruction: the question itself, trimmed (`wavllm ask`).");
  m.def("set_threads", &wavllm::set_threads, py::arg("n"),
        "Intra-op threads of the whole process (n <= 0: one per core; capped at the core count). A Model "
        "runs its calls with its own `threads` whatever this says.");

  using wavllm::GenerationOptions;
  py::class_<GenerationOptions>(m, "GenerationOptions",
                                "Decoding options (the engine's GenerationOptions): defaults from config.json's "
                                "`generation` section via Model.generation_options, or these field defaults.")
      .def(py::init<>())
      .def_readwrite("max_steps", &GenerationOptions::max_steps)
      .def_readwrite("temperature", &GenerationOptions::temperature)
      .def_readwrite("top_p", &GenerationOptions::top_p)
      .def_readwrite("top_k", &GenerationOptions::top_k)
      .def_readwrite("num_beams", &GenerationOptions::num_beams)
      .def_readwrite("length_penalty", &GenerationOptions::length_penalty)
      .def_readwrite("repetition_penalty", &GenerationOptions::repetition_penalty)
      .def_readwrite("no_repeat_ngram_size", &GenerationOptions::no_repeat_ngram_size)
      .def_readwrite("max_new_tokens", &GenerationOptions::max_new_tokens)
      .def_readwrite("seed", &GenerationOptions::seed)
      .def_property(
          "stop", [](const GenerationOptions& o) { return o.stop; },
          [](GenerationOptions& o, const py::object& v) { o.stop = v.is_none() ? std::vector<std::string>{} : stop_strings(v); })
      .def_readwrite("return_step_logits", &GenerationOptions::return_step_logits)
      .def("validate", &GenerationOptions::validate,
           "Raises wavllm.ArgumentError naming the first option outside its range.")
      .def("__repr__", [](const py::object& self) {
        // Every field, by the class's own properties: the list is the bound one, written once.
        std::string fields;
        for (const auto& name : py::module_::import("builtins").attr("sorted")(py::type::of(self).attr("__dict__"))) {
          const std::string n = py::str(name);
          if (n.rfind("_", 0) == 0 || !py::isinstance(py::type::of(self).attr("__dict__")[name],
                                                       py::module_::import("builtins").attr("property")))
            continue;
          fields += (fields.empty() ? "" : ", ") + n + "=" + std::string(py::repr(self.attr(name)));
        }
        return "GenerationOptions(" + fields + ")";
      });

  py::class_<wavllm::GenerationResult>(m, "GenerationResult",
                                       "What Model.generate returns: the text, its token ids, per-stage timings "
                                       "and the real-time factor (and the step logits when asked for).")
      .def_property_readonly("text", [](const wavllm::GenerationResult& r) { return to_py_str(r.text); })
      .def_readonly("token_ids", &wavllm::GenerationResult::token_ids,
                    "generated ids after the forced prompt suffix, EOS stripped")
      .def_readonly("decoded_tokens", &wavllm::GenerationResult::decoded_tokens,
                    "every token chosen after the initial BOS, forced prefix included")
      .def_property_readonly("step_logits",
                             [](const wavllm::GenerationResult& r) -> py::object {
                               if (!r.step_logits.defined()) return py::none();
                               return to_numpy<float>(r.step_logits);
                             },
                             "float32 [steps, vocab] when generate(return_step_logits=True), else None")
      .def_property_readonly("timings", [](const wavllm::GenerationResult& r) { return timings_dict(r.timings); },
                             "seconds per stage")
      .def_readonly("audio_seconds", &wavllm::GenerationResult::audio_seconds)
      .def_readonly("real_time_factor", &wavllm::GenerationResult::real_time_factor,
                    "processing seconds / audio seconds")
      .def("to_json", [](const wavllm::GenerationResult& r) { return to_py_str(r.to_json()); },
           "The result as one line of JSON, the form `wavllm ... --json` and `wavllm batch` print.")
      .def("__repr__", [](const wavllm::GenerationResult& r) {
        return py::str("GenerationResult(text={!r}, tokens={}, real_time_factor={:.3f})")
            .format(to_py_str(r.text), r.token_ids.size(), r.real_time_factor);
      });

  py::class_<wavllm::Segment>(m, "Segment", "One piece of speech of a recording and its answer (Model.segments).")
      .def_readonly("start", &wavllm::Segment::start, "seconds from the start of the recording")
      .def_readonly("end", &wavllm::Segment::end, "seconds from the start of the recording")
      .def_property_readonly("text", [](const wavllm::Segment& s) { return to_py_str(s.text); })
      .def_readonly("token_ids", &wavllm::Segment::token_ids)
      .def_readonly("token_logprobs", &wavllm::Segment::token_logprobs, "per token id: its log-probability")
      .def_readonly("avg_logprob", &wavllm::Segment::avg_logprob, "mean of token_logprobs")
      .def_property_readonly("timings", [](const wavllm::Segment& s) { return timings_dict(s.timings); })
      .def("__repr__", [](const wavllm::Segment& s) {
        return py::str("Segment(start={:.2f}, end={:.2f}, text={!r})").format(s.start, s.end, to_py_str(s.text));
      });

  py::class_<PySegments>(m, "Segments",
                         "An iterator over a recording's Segments, decoding one piece per step; duration, pieces "
                         "and speech_seconds describe the recording (faster-whisper's info).")
      .def("__iter__", [](PySegments& s) -> PySegments& { return s; })
      .def("__next__", &PySegments::next)
      .def_property_readonly("duration", [](const PySegments& s) { return s.run().duration_seconds(); },
                             "seconds of audio")
      .def_property_readonly("pieces", [](const PySegments& s) { return s.run().pieces().size(); },
                             "pieces of speech found (each one request)")
      .def_property_readonly("speech_seconds", [](const PySegments& s) { return s.run().speech_seconds(); },
                             "the pieces' total seconds")
      .def_property_readonly("done", [](const PySegments& s) { return s.run().done(); }, "pieces decoded so far");

  py::class_<PyBatch>(m, "Batch",
                      "An iterator over generate_many's answers in request order: a GenerationResult per request, "
                      "or the exception (wavllm.Error and its subclasses) of one that failed.")
      .def("__iter__", [](PyBatch& b) -> PyBatch& { return b; })
      .def("__next__", &PyBatch::next)
      .def("__len__", &PyBatch::size);

  py::class_<PyModel>(m, "Model")
      .def(py::init<const py::object&, const std::string&, const std::string&, std::optional<int>, std::optional<double>>(),
           py::arg("path"), py::arg("device") = "cpu", py::arg("dtype") = "auto", py::arg("threads") = py::none(),
           py::arg("whisper_margin") = py::none())
      .def_property_readonly("directory", [](const PyModel& pm) { return pm.get().directory(); })
      .def_property_readonly("device", [](const PyModel& pm) { return pm.get().device().str(); })
      .def_property_readonly("dtype", [](const PyModel& pm) { return wavllm::dtype_label(pm.get().dtype()); })
      .def_property_readonly("threads", [](const PyModel& pm) { return pm.get().threads(); },
                             "Intra-op threads each call of this model runs with.")
      .def_property_readonly("whisper_margin", [](const PyModel& pm) { return pm.get().whisper_margin_seconds(); },
                             "Seconds of Whisper's window encoded beyond the audio (None: the whole window, as the reference).")
      .def_property_readonly(
          "config",
          [](const PyModel& pm) { return py::module_::import("json").attr("loads")(pm.get().config().to_json_text()); },
          "config.json as a dict")
      .def("whisper_encoder", audio_method(&wavllm::Model::whisper_encoder), py::arg("audio"),
           "Whisper encoder output per 30-s part: list of float32 [T, d].")
      .def("wavlm_hidden_states", audio_method(&wavllm::Model::wavlm_hidden_states), py::arg("audio"),
           "WavLM input of layer 0 and output of every layer: list of float32 [T, h].")
      .def("audio_embeddings", audio_method(&wavllm::Model::audio_embeddings), py::arg("audio"),
           "Fused audio embeddings fed to the decoder: float32 [T, dim].")
      .def(
          "prompt_ids",
          [](const PyModel& pm, const std::string& instruction) {
            wavllm::decoder::PromptIds ids;
            {
              py::gil_scoped_release nogil;
              ids = pm.get().prompt_ids(instruction);
            }
            return prompt_ids_tuple(ids);
          },
          py::arg("instruction"), "(left, right, orig) token id lists of docs/model.md §6.")
      .def(
          "prompt_scale",
          [](const PyModel& pm, const std::string& instruction) {
            at::Tensor s;
            {
              py::gil_scoped_release nogil;
              s = pm.get().prompt_scale(instruction);
            }
            return to_numpy<float>(s);
          },
          py::arg("instruction"), "The prompt adapter's LoRA scale vector: float32 [dim].")
      .def(
          "save_preset_scales",
          [](const PyModel& pm) {
            py::gil_scoped_release nogil;
            return pm.get().save_preset_scales();
          },
          "Stores every task preset's LoRA scale as prompt_scales.safetensors in the model directory "
          "(what `wavllm cache-prompts` does); returns its path.")
      .def_property_readonly(
          "preset_scales_loaded", [](const PyModel& pm) { return pm.get().preset_scales_loaded(); },
          "How many instructions' LoRA scales this load took from prompt_scales.safetensors.")
      .def_property_readonly(
          "generation_options", [](const PyModel& pm) { return pm.get().generation_options(); },
          "A copy of the model's default GenerationOptions (config.json's `generation` section).")
      .def(
          "segments",
          [](const PyModel& pm, const py::object& audio, const std::string& instruction, double max_segment,
             int vad_aggressiveness, int encoder_batch, const py::object& options, const py::kwargs& overrides) {
            return std::make_unique<PySegments>(pm, audio, instruction, max_segment, vad_aggressiveness, encoder_batch,
                                                options, overrides);
          },
          py::arg("audio"), py::arg("instruction"), py::kw_only(), py::arg("max_segment") = 30.0,
          py::arg("vad_aggressiveness") = 2, py::arg("encoder_batch") = 1, py::arg("options") = py::none(),
          "The recording as pieces of speech (WebRTC voice activity, at most max_segment seconds, cut at "
          "pauses), each one request with `instruction`: an iterator of Segments (docs/python.md).")
      .def(
          "generate_many",
          [](const PyModel& model, const py::iterable& requests, int parallel, const py::object& options,
             const py::kwargs& overrides) {
            if (parallel < 1 || parallel > wavllm::SchedulerOptions::kMaxBatch)
              throw py::value_error("parallel must be 1 to " + std::to_string(wavllm::SchedulerOptions::kMaxBatch) +
                                    ", got " + std::to_string(parallel));
            return std::make_unique<PyBatch>(model, requests, parallel,
                                             model.options_with("generate_many", options, overrides));
          },
          py::arg("requests"), py::kw_only(), py::arg("parallel") = 8, py::arg("options") = py::none(),
          "generate_many(requests, *, parallel=8, options=None, **fields): (audio, instruction) pairs decoded "
          "`parallel` at a time with continuous batching (as `wavllm serve`), each to exactly the tokens "
          "generate() gives it; an iterator (Batch) of results in request order, a failed request's "
          "exception in its place. Greedy or sampling only (num_beams 1).")
      .def("generate", &PyModel::generate, py::arg("audio"), py::arg("instruction"), py::kw_only(),
           py::arg("options") = py::none(), py::arg("on_text") = py::none(),
           "generate(audio, instruction, *, options=None, on_text=None, **fields): the answer to "
           "`instruction` about `audio`. Keywords are GenerationOptions fields (max_new_tokens, max_steps, "
           "temperature, top_p, top_k, seed, num_beams, length_penalty, repetition_penalty, "
           "no_repeat_ngram_size, stop, return_step_logits) set over `options` (default: the model's "
           "config.json `generation` values, greedy for the released model); None leaves a field as it is.");
}
