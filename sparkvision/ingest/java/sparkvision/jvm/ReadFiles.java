package sparkvision.jvm;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.security.PrivilegedExceptionAction;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.security.UserGroupInformation;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.util.SerializableConfiguration;

/**
 * Reads a batch of small files with many reads in flight: {@code read_files(paths array<string>) -> struct}.
 *
 * <p>A small file on HDFS costs round trips, not bytes: a NameNode call to locate its block, then a DataNode
 * read. One task reading its files one after the other waits on those round trips; this UDF keeps up to
 * {@code concurrency} reads of one batch in flight (threads of a pool shared by the tasks of the JVM), so the
 * waits overlap, and returns the batch's contents in the order of the paths. A file that cannot be read gets a
 * null content and the error; one larger than {@code maxBytes} is not kept (its size says why). Memory: one
 * batch's contents (the caller bounds a batch by its listed bytes).
 *
 * <p>Result: {@code struct<content: array<binary>, size: array<bigint>, error: array<string>>}.
 */
public class ReadFiles implements UDF2<String, scala.collection.Seq<String>, Row> {
  public static final StructType RESULT =
      new StructType()
          .add("content", DataTypes.createArrayType(DataTypes.BinaryType, true), false)
          .add("size", DataTypes.createArrayType(DataTypes.LongType, true), false)
          .add("error", DataTypes.createArrayType(DataTypes.StringType, true), false);

  private static ExecutorService pool;

  private final SerializableConfiguration conf;
  private final long maxBytes;
  private final int concurrency;
  private transient FileSystem fs;
  private transient ListedBlocks listed;
  private transient int bufferSize;
  private transient boolean localReads;
  private transient ListedBlocks.Window window;

  public ReadFiles(Configuration conf, long maxBytes, int concurrency) {
    this.conf = new SerializableConfiguration(conf);
    this.maxBytes = maxBytes;
    this.concurrency = Math.max(1, concurrency);
  }

  private static synchronized ExecutorService pool() {
    if (pool == null) {
      // threads made on demand, idle ones end after a minute; callers bound what they have in flight
      ThreadPoolExecutor executor =
          new ThreadPoolExecutor(0, Integer.MAX_VALUE, 60, TimeUnit.SECONDS, new SynchronousQueue<>(), r -> {
            Thread thread = new Thread(r, "sparkvision-read-files");
            thread.setDaemon(true);
            return thread;
          });
      pool = executor;
    }
    return pool;
  }

  /** Files of one batch: {@code root} (the drop) and paths relative to it. */
  @Override
  public Row call(String root, scala.collection.Seq<String> paths) throws Exception {
    int n = paths.length();
    byte[][] contents = new byte[n][];
    Long[] sizes = new Long[n];
    String[] errors = new String[n];
    if (fs == null) {
      fs = new Path(root).getFileSystem(conf.value());
      listed = ListedBlocks.of(fs, conf.value());
      bufferSize = conf.value().getInt("io.file.buffer.size", 4096);
      localReads = listed != null && LocalReplicas.configured(conf.value());
      window = new ListedBlocks.Window();
    }
    UserGroupInformation user = UserGroupInformation.getCurrentUser();
    Path base = new Path(root);
    // on HDFS, files are named by their path strings (no Path, no URI parsing per file)
    String folder = base.toUri().getPath();
    String prefix = folder.endsWith("/") ? folder : folder + "/";
    List<String> remembered = listed == null ? List.of() : remember(prefix, paths);
    try {
      read(base, prefix, paths, user, contents, sizes, errors);
    } finally {
      if (listed != null) {
        listed.forget(remembered);
      }
    }
    return RowFactory.create(contents, sizes, errors);
  }

  /**
   * The block locations of the batch's files, one folder listing per run of paths in the same folder (a folder
   * that cannot be listed is skipped: its files are opened one by one, and say what is wrong).
   */
  private List<String> remember(String prefix, scala.collection.Seq<String> paths) {
    List<String> remembered = new ArrayList<>();
    String folder = null;
    List<String> names = new ArrayList<>();
    for (int i = 0; i <= paths.length(); i++) {
      String parent = null;
      String name = null;
      if (i < paths.length()) {
        String src = prefix + paths.apply(i);
        int slash = src.lastIndexOf('/');
        parent = src.substring(0, slash);
        name = src.substring(slash + 1);
      }
      if (folder != null && !folder.equals(parent)) {
        try {
          listed.remember(folder, names, remembered, window);
        } catch (IOException | RuntimeException e) {
          // opened one by one
        }
        names = new ArrayList<>();
      }
      folder = parent;
      names.add(name);
    }
    return remembered;
  }

  private void read(
      Path base, String prefix, scala.collection.Seq<String> paths, UserGroupInformation user, byte[][] contents,
      Long[] sizes,
      String[] errors) throws InterruptedException {
    int n = paths.length();
    ExecutorService executor = pool();
    Deque<Future<Object[]>> inFlight = new ArrayDeque<>();
    int submitted = 0;
    for (int i = 0; i < n; i++) {
      while (submitted < n && submitted < i + concurrency) {
        String path = paths.apply(submitted);
        inFlight.add(executor.submit(() -> user.doAs((PrivilegedExceptionAction<Object[]>) () -> read(base, prefix, path))));
        submitted++;
      }
      Object[] result;
      try {
        result = inFlight.poll().get();
      } catch (ExecutionException e) {
        Throwable cause = e.getCause() == null ? e : e.getCause();
        result = new Object[] {null, null, describe(cause)};
      }
      contents[i] = (byte[]) result[0];
      sizes[i] = (Long) result[1];
      errors[i] = (String) result[2];
    }
  }

  /** {content, size, error} of one file: its bytes, or null and why (too large: null with its size). */
  private Object[] read(Path base, String prefix, String path) {
    byte[] local = localReads ? listed.readLocal(prefix + path, maxBytes) : null;
    if (local != null) {
      return new Object[] {local, (long) local.length, null};
    }
    try (InputStream in = listed == null ? fs.open(new Path(base, path)) : listed.open(prefix + path, bufferSize)) {
      int cap = (int) Math.min(maxBytes + 1, Integer.MAX_VALUE - 16);
      byte[] data = in.readNBytes(cap);
      if (data.length > maxBytes) {
        long size = fs.getFileStatus(new Path(base, path)).getLen();
        return new Object[] {null, size, "over max_file_bytes"};
      }
      return new Object[] {data, (long) data.length, null};
    } catch (IOException | RuntimeException e) {
      return new Object[] {null, null, describe(e)};
    }
  }

  private static String describe(Throwable e) {
    String kind = e instanceof FileNotFoundException ? "FileNotFoundException" : e.getClass().getSimpleName();
    String message = String.valueOf(e.getMessage()).split("\n", 2)[0];
    return kind + ": " + (message.length() > 200 ? message.substring(0, 200) : message);
  }
}
